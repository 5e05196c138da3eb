"""The viewer's image stacks of the demo's real DICOM: the case warmed ahead is the reader's next unsubmitted one."""

from studyapp import demo
from studyapp.config import Settings
from studyapp.db.models import STATUS_SUBMITTED, Assignment, Report, User
from studyapp.services import images


def test_next_case_follows_the_worklist_and_skips_submitted(db, tmp_path):
    with db.begin() as session:
        demo.ensure_demo(session, Settings(data_dir=tmp_path))
        reader = session.query(User).filter_by(username="reader1").one()
        first, second, third = session.query(Assignment).filter_by(reader_id=reader.id).order_by(Assignment.position)
        assert images.next_case_id(session, reader, first.case_id) == second.case_id
        assert images.next_case_id(session, reader, third.case_id) is None
        session.add(Report(assignment_id=second.id, draft_text="d", current_text="done", final_text="done",
                           status=STATUS_SUBMITTED))
        session.flush()
        assert images.next_case_id(session, reader, first.case_id) == third.case_id
        other = session.query(User).filter_by(username="reader2").one()
        unread = next(a.case_id for a in session.query(Assignment).filter_by(reader_id=other.id)
                      if a.case_id not in {first.case_id, second.case_id, third.case_id})
        assert images.next_case_id(session, reader, unread) is None  # not a case of this reader
        assert [s.images[0][0] for s in images.case_stacks(session, reader, first.case_id)] == [
            i.sop_instance_uid for s in first.case.series for i in s.instances][:1]

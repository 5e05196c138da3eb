"""The append-only audit log: one ``AuditEvent`` per action that changes or exports study data."""

from sqlalchemy.orm import Session

from studyapp.db.models import AuditEvent, User


def record(
    session: Session,
    kind: str,
    *,
    user: User | None = None,
    study_id: int | None = None,
    assignment_id: int | None = None,
    **detail,
) -> AuditEvent:
    """Add an event (committed with the caller's transaction, so a refused action leaves no event).

    Args:
        kind: stable event code, e.g. ``opened``, ``submitted``, ``dicom_imported``, ``reads_exported``.
        user: who acted; ``None`` for command-line actions (whoever can run them owns the data folder).
        detail: JSON-serialisable facts (counts, seeds, file names).
    """
    event = AuditEvent(kind=kind, user_id=user.id if user else None, study_id=study_id, assignment_id=assignment_id,
                       detail=detail)
    session.add(event)
    return event

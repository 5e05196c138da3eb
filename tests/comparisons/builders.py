"""Builders: a study with labelled cases, reference reports and 'model' drafts, readers and a coordinator."""

import re

from studyapp.db.models import ROLE_COORDINATOR, Case, Draft
from studyapp.services import accounts, studies

#: Source names that must never reach a reader (spec strings, arm code, arm label, draft source), as whole words.
SECRET_NAMES = ("reference", "draft:model", "MedVersa", "gpt-4o", "model")


def leaked_names(text: str) -> list[str]:
    """The secret names found in ``text`` as whole words (case-insensitive; 'preference' is not 'reference')."""
    return [name for name in SECRET_NAMES if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text, re.I)]


def reference_text(i: int) -> str:
    return f"Findings: heart size normal, case {i}. Impression: right lower lobe opacity {i}."


def candidate_text(i: int) -> str:
    return f"Findings: no focal consolidation, case {i}. Impression: no acute cardiopulmonary process {i}."


def make_study(session, n_normal: int, n_abnormal: int, n_readers: int, name: str = "s1"):
    """Create the study; case keys C000.., normal cases first. Returns (study, readers, coordinator)."""
    study = studies.create_study(session, name)
    model_arm = next(a for a in study.arms if a.code == "model")
    for i in range(n_normal + n_abnormal):
        case = Case(
            study_id=study.id, case_key=f"C{i:03d}", study_instance_uid=f"1.2.826.0.1.{i}",
            label="normal" if i < n_normal else "abnormal", patient_age="063Y", patient_sex="F",
            indication=f"cough {i}", reference_report=reference_text(i),
        )
        session.add(case)
        session.flush()
        session.add(Draft(case_id=case.id, arm_id=model_arm.id, text=candidate_text(i), source="gpt-4o-style"))
    readers = []
    for r in range(n_readers):
        user = accounts.add_user(session, f"{name}-reader{r}", "orbit-lantern-42")
        accounts.enroll_reader(session, study, user)
        readers.append(user)
    coordinator = accounts.add_user(session, f"{name}-coord", "orbit-lantern-42", role=ROLE_COORDINATOR)
    session.flush()
    return study, readers, coordinator

"""Creating and finding reader studies and their arms."""

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from studyapp.db.models import ARM_TEMPLATE, Arm, Draft, ReaderStudy
from studyapp.services import audit
from studyapp.services.errors import InvalidInput, NotFound

#: The three starting conditions of the paper's user study (section 2.4): code -> coordinator-facing label.
PAPER_ARMS = {
    ARM_TEMPLATE: "Normal template",
    "llm": "External LLM draft (e.g. GPT-4o)",
    "model": "MedVersa draft",
}


def create_study(
    session: Session,
    name: str,
    arms: dict[str, str] | None = None,
    template_text: str = "",
    seed: int = 0,
    description: str = "",
) -> ReaderStudy:
    """Create a reader study with its arms.

    Args:
        arms: arm code -> label; default the paper's three arms (:data:`PAPER_ARMS`).
        template_text: the study-level normal template, the starting text of arm ``template``.
        seed: seed of the study's random design (assignment order), recorded on the study.

    Raises:
        InvalidInput: empty name, a name already used, or no arms.
    """
    name = name.strip()
    if not name:
        raise InvalidInput("study name is empty")
    if session.scalar(select(ReaderStudy).where(ReaderStudy.name == name)) is not None:
        raise InvalidInput(f"a study named {name!r} already exists")
    arms = PAPER_ARMS if arms is None else arms
    if not arms:
        raise InvalidInput("a study needs at least one arm")
    study = ReaderStudy(name=name, template_text=template_text, seed=seed, description=description)
    session.add(study)
    session.flush()
    for code, label in arms.items():
        session.add(Arm(study_id=study.id, code=code, label=label))
    session.flush()
    return study


def get_study(session: Session, name: str) -> ReaderStudy:
    """The study named ``name``.

    Raises:
        NotFound: no such study.
    """
    study = session.scalar(select(ReaderStudy).where(ReaderStudy.name == name))
    if study is None:
        names = list(session.scalars(select(ReaderStudy.name).order_by(ReaderStudy.id)))
        raise NotFound(f"unknown study {name!r}; studies: {', '.join(repr(n) for n in names) or 'none yet'}")
    return study


def list_studies(session: Session) -> list[ReaderStudy]:
    """All studies, oldest first."""
    return list(session.scalars(select(ReaderStudy).order_by(ReaderStudy.id)))


def draft_findings_count(session: Session, arm: Arm) -> tuple[int, int]:
    """``(drafts of arm that carry findings, all drafts of arm)``."""
    drafts = select(func.count(Draft.id)).where(Draft.arm_id == arm.id)
    return session.scalar(drafts.where(Draft.findings.any())), session.scalar(drafts)


def show_findings(session: Session, study: ReaderStudy, arm_code: str, shown: bool = True,
                  require_findings: bool = False) -> Arm:
    """Make ``arm_code`` a "model draft with findings" arm (its readers see the drafts' boxes and masks on the
    image, ``studyapp.services.findings``), or a plain one with ``shown=False``. Does not commit.

    Args:
        require_findings: refuse to show findings when no draft of the arm carries any (the CLI's
            ``show-findings``; drafts may be imported later when this is off).

    Raises:
        NotFound: the study has no such arm.
        InvalidInput: ``require_findings`` and none of the arm's drafts carries findings.
    """
    arm = session.scalar(select(Arm).where(Arm.study_id == study.id, Arm.code == arm_code))
    if arm is None:
        codes = ", ".join(a.code for a in study.arms)
        raise NotFound(f"study {study.name!r} has no arm {arm_code!r}; its arms are {codes}")
    if shown and require_findings:
        with_findings, drafts = draft_findings_count(session, arm)
        if not with_findings:
            raise InvalidInput(f"none of the {drafts} draft(s) of arm {arm.code!r} carries findings (boxes or masks), "
                               "so readers would see nothing; import drafts with findings first (engine.drafts "
                               "writes them when the model's answers hold <DET>/<2DSEG>/<3DSEG>)")
    arm.shows_findings = shown
    session.flush()
    audit.record(session, "arm_findings_shown" if shown else "arm_findings_hidden", study_id=study.id, arm=arm.code)
    return arm

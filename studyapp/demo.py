"""The embedded demo study: real DICOM shipped in ``assets/dicom`` with hand-written SAMPLE drafts.

The demo has the paper's three arms, one coordinator and three reader accounts with random passwords
(written to ``{data_dir}/demo-credentials.txt``), and a balanced assignment. Creating it is idempotent.
"""

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from studyapp.config import Settings
from studyapp.db.models import ROLE_COORDINATOR, ROLE_READER, Draft, ReaderStudy
from studyapp.services import accounts, design, drafts, ingest, studies
from studyapp.services.errors import NotFound

ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEMO_STUDY = "Demo: radiology reporting (sample drafts)"
#: Shown to the demo's readers above their worklist (the study description).
ABOUT = ("**Demo study.** The images are real public DICOM (two chest CR, a veterinary DX thorax and an abdominal "
         "CT series); the starting drafts are hand-written samples, not outputs of GPT-4o or MedVersa.")
DEMO_SOURCE = "sample text written for the demo (not a model output)"
DEMO_READERS = ("reader1", "reader2", "reader3")
DEMO_COORDINATOR = "coordinator"
DEMO_SEED = 20240801
#: In the data folder: one line per demo account whose random password is unchanged (role, username, password).
CREDENTIALS_FILE = "demo-credentials.txt"


@dataclass(frozen=True)
class DemoInfo:
    """What a person needs to try the demo: the study, where the passwords are, and whether it was just built."""

    study: str
    credentials_file: Path
    created: bool


def _credentials_file(settings: Settings) -> Path:
    return Path(settings.data_dir) / CREDENTIALS_FILE


def _write_accounts(session: Session, study: ReaderStudy, path: Path) -> None:
    lines = []
    for username, role in [(DEMO_COORDINATOR, ROLE_COORDINATOR), *((r, ROLE_READER) for r in DEMO_READERS)]:
        password = secrets.token_urlsafe(9)
        user = accounts.add_user(session, username, password, role=role)
        if role == ROLE_READER:
            accounts.enroll_reader(session, study, user)
        lines.append(f"{role:12s} {username:12s} {password}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)


def drop_credentials(data_dir: Path, username: str) -> bool:
    """Remove ``username``'s line from ``{data_dir}/demo-credentials.txt`` once its password was changed, so that
    the printed demo accounts never show a password that no longer works (other lines and the file's 0600 mode
    stay; a missing file or an account not listed changes nothing).

    Returns:
        Whether a line was removed.

    Raises:
        OSError: the file exists but cannot be read or rewritten.
    """
    path = Path(data_dir) / CREDENTIALS_FILE
    if not path.exists():
        return False
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if line.split()[1:2] != [username]]
    if len(kept) == len(lines):
        return False
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    return True


def ensure_demo(session: Session, settings: Settings) -> DemoInfo:
    """Create the demo study unless it exists.

    Raises:
        StudyError: the shipped assets are incomplete (a case without sample content), or a demo account name is
            already taken by another account.
    """
    try:
        studies.get_study(session, DEMO_STUDY)
        return DemoInfo(DEMO_STUDY, _credentials_file(settings), created=False)
    except NotFound:
        pass
    content = json.loads((ASSETS / "demo" / "cases.json").read_text(encoding="utf-8"))
    study = studies.create_study(session, DEMO_STUDY, template_text=content["template"], seed=DEMO_SEED,
                                 description=ABOUT)
    ingest.import_folder(session, study, ASSETS / "dicom")
    arms = {arm.code: arm for arm in study.arms}
    for case in study.cases:
        sample = content["cases"].get(case.study_instance_uid)
        if sample is None:
            raise NotFound(f"assets/demo/cases.json has no entry for StudyInstanceUID {case.study_instance_uid}")
        case.case_key, case.indication, case.comparison = sample["case_key"], sample["indication"], sample["comparison"]
        for code, text in sample["drafts"].items():
            session.add(Draft(case_id=case.id, arm_id=arms[code].id, text=text, source=DEMO_SOURCE, is_sample=True))
    drafts.set_template(session, study, content["template"])
    _write_accounts(session, study, _credentials_file(settings))
    design.generate_assignments(session, study, seed=DEMO_SEED, cases_per_reader=len(arms))
    return DemoInfo(DEMO_STUDY, _credentials_file(settings), created=True)


def describe(info: DemoInfo) -> str:
    """Sign-in instructions for the demo, with the accounts when the credentials file is there."""
    lines = [f"Demo study: {info.study!r}" + (" (created now)" if info.created else "")]
    listed = info.credentials_file.read_text(encoding="utf-8").splitlines() if info.credentials_file.exists() else None
    if listed:
        lines.append(f"Accounts (role, username, password), also in {info.credentials_file}:")
        lines += ["  " + line for line in listed]
    elif listed is not None:
        lines.append(f"{info.credentials_file} lists no account: the demo accounts' passwords were changed "
                     "(`python app.py set-password USER`).")
    else:
        lines.append(f"Credentials file {info.credentials_file} is missing; add accounts with `python app.py add-user`.")
    return "\n".join(lines)

"""User accounts issued by the coordinator; passwords hashed with Argon2id (argon2-cffi)."""

import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from studyapp.db.models import ROLE_READER, ROLES, ReaderStudy, StudyReader, User
from studyapp.services import audit, signins
from studyapp.services.errors import InvalidInput, NotFound
from studyapp.services.passwords import check_password

_hasher = PasswordHasher()


def add_user(
    session: Session, username: str, password: str, role: str = ROLE_READER, display_name: str = ""
) -> User:
    """Create an account.

    Raises:
        InvalidInput: empty username, a password the policy refuses (:func:`studyapp.services.passwords.check_password`:
            short, common or guessable; the message says why), unknown role, or username taken.
    """
    username = username.strip()
    if not username:
        raise InvalidInput("username is empty")
    _check_password(password, username, display_name)
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; expected one of {ROLES}")
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise InvalidInput(f"username {username!r} is already taken")
    user = User(
        username=username, password_hash=_hasher.hash(password), role=role, display_name=display_name or username
    )
    session.add(user)
    session.flush()
    return user


def _check_password(password: str, username: str, display_name: str) -> None:
    """Apply the password policy (:func:`studyapp.services.passwords.check_password`) to ``username``'s password.

    Raises:
        InvalidInput: refused; the message names the account and says why.
    """
    try:
        check_password(password, username, display_name)
    except InvalidInput as refused:
        raise InvalidInput(f"password for {username!r} refused: {refused}") from None


def set_password(session: Session, username: str, password: str) -> tuple[User, int]:
    """Give the existing account ``username`` a new password (an account restored from an archive, which has none,
    or a reader's forgotten one), under the same policy as :func:`add_user`. The account's live sign-in sessions
    end (:func:`studyapp.services.signins.end_user_sessions`, reason ``password_set``); audited as
    ``password_set``. Does not commit.

    Returns:
        The account and the number of sign-in sessions ended.

    Raises:
        NotFound: no such account.
        InvalidInput: a password the policy refuses (the message says why).
    """
    user = get_user(session, username)
    _check_password(password, user.username, user.display_name)
    user.password_hash = _hasher.hash(password)
    ended = signins.end_user_sessions(session, user, signins.END_PASSWORD_SET)
    audit.record(session, "password_set", username=user.username, sessions_ended=ended)
    session.flush()
    return user, ended


@functools.cache
def _dummy_hash() -> str:
    """An Argon2 hash of a random password, made once per process with the same parameters as real hashes."""
    return _hasher.hash(secrets.token_urlsafe(16))


def authenticate(session: Session, username: str, password: str) -> User | None:
    """Return the user when ``password`` matches the stored Argon2 hash, else ``None``.

    An unknown username is verified against a dummy hash, so it takes as long as a wrong password of an existing
    account (the answer time does not tell which usernames exist).
    """
    user = find_user(session, username)
    try:
        _hasher.verify(user.password_hash if user is not None else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return None
    return user


def find_user(session: Session, username: str) -> User | None:
    """The account named ``username``, or ``None``."""
    return session.scalar(select(User).where(User.username == username))


def get_user(session: Session, username: str) -> User:
    """The account named ``username``.

    Raises:
        NotFound: no such account.
    """
    user = find_user(session, username)
    if user is None:
        raise NotFound(f"unknown user {username!r}")
    return user


def list_users(session: Session, role: str | None = None) -> list[User]:
    """Every account (only those of ``role`` if given), by username."""
    query = select(User).order_by(User.username)
    return list(session.scalars(query if role is None else query.where(User.role == role)))


def study_readers(session: Session, study: ReaderStudy) -> list[User]:
    """The reader accounts enrolled in ``study`` (:func:`enroll_reader`), by username."""
    return list(session.scalars(
        select(User).join(StudyReader, StudyReader.user_id == User.id).where(StudyReader.study_id == study.id)
        .order_by(User.username)
    ))


def enroll_reader(session: Session, study: ReaderStudy, user: User) -> StudyReader:
    """Add ``user`` as a reader of ``study`` (idempotent).

    Raises:
        InvalidInput: the account is a coordinator account.
    """
    if user.role != ROLE_READER:
        raise InvalidInput(f"{user.username!r} is a {user.role} account, not a reader")
    link = session.scalar(
        select(StudyReader).where(StudyReader.study_id == study.id, StudyReader.user_id == user.id)
    )
    if link is None:
        link = StudyReader(study_id=study.id, user_id=user.id)
        session.add(link)
        session.flush()
    return link

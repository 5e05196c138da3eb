"""What every tab's handlers share: the session factory, and a guarded unit of work per user action."""

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import gradio as gr
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from studyapp.config import Settings
from studyapp.db.models import ROLE_COORDINATOR, User
from studyapp.services import accounts
from studyapp.services.errors import PermissionDenied, StudyError
from studyapp.services.signins import SignIns
from studyapp.ui.signin import sign_in_token
from studyapp.web.drain import InFlight
from studyapp.web.throttle import SignInThrottle, ThrottlePolicy

#: Errors of a database that cannot be reached or written now (server stopped or restarting, connection lost, disk
#: full, every pooled connection busy); user actions report them as :data:`DATABASE_UNAVAILABLE`, never as a bare
#: "Error", and the same action can be retried once the database is back.
DATABASE_ERRORS = (OperationalError, InterfaceError, PoolTimeout)
DATABASE_UNAVAILABLE = "the database is unreachable right now (nothing was changed); try again in a moment"


@dataclass(frozen=True)
class UIContext:
    """Shared by all tabs and the web app: ``sessions`` is the process's one session factory; ``settings`` where
    data lives; ``sign_ins`` the sign-in sessions (ended after ``settings.session_idle_minutes`` idle);
    ``throttle`` slows down failed sign-ins; ``work`` counts actions in progress (for a graceful stop)."""

    sessions: sessionmaker[Session]
    settings: Settings = field(default_factory=Settings)
    sign_ins: SignIns = None  # type: ignore[assignment]  # made from settings when not given
    throttle: SignInThrottle = None  # type: ignore[assignment]
    work: InFlight = field(default_factory=InFlight)

    def __post_init__(self):
        if self.sign_ins is None:
            object.__setattr__(self, "sign_ins", SignIns(self.sessions, self.settings.session_idle_minutes * 60))
        if self.throttle is None:
            policy = ThrottlePolicy(lockout_failures=self.settings.signin_lockout_failures,
                                    lockout_s=self.settings.signin_lockout_minutes * 60)
            object.__setattr__(self, "throttle", SignInThrottle(policy))


def signed_in_user(session: Session, request: gr.Request | None) -> User:
    """The account behind ``request`` (the web app's sign-in check sets ``request.username``; ``studyapp.web.app``).

    Raises:
        PermissionDenied: no signed-in user.
    """
    username = getattr(request, "username", None)
    if not username:
        raise PermissionDenied("please sign in")
    return accounts.get_user(session, username)


def cookie_username(ctx: UIContext, request) -> str | None:
    """The username of a live sign-in session behind a raw Starlette request (Gradio passes one to component
    server functions, without ``username``); ``None`` when signed out or ended. Not activity."""
    entry = ctx.sign_ins.lookup(sign_in_token(request))
    return entry.username if entry is not None and entry.ended is None else None


@contextmanager
def user_action(ctx: UIContext, request: gr.Request | None, coordinator: bool = False, active: bool = True
                ) -> Iterator[tuple[Session, User]]:
    """One transaction for one user action, with the signed-in user of a live sign-in session.

    Service errors, unreadable paths and an unreachable database (:data:`DATABASE_ERRORS`) become ``gr.Error``
    (shown to the user; the transaction rolls back).

    Args:
        coordinator: require a coordinator account.
        active: the action is user activity (restarts the sign-in idle time); a periodic autosave passes False
            and reports activity itself when the text changed (``ctx.sign_ins.touch``).

    Raises:
        gr.Error: from :class:`studyapp.services.signins.SessionExpired` (``error.__cause__``) when the sign-in
            session ended after its idle time, and from any refused request.
    """
    try:
        ctx.sign_ins.check(sign_in_token(request), active=active)
        with ctx.work.action(), ctx.sessions.begin() as session:
            user = signed_in_user(session, request)
            if coordinator and user.role != ROLE_COORDINATOR:
                raise PermissionDenied(f"{user.username!r} is not a coordinator")
            yield session, user
    except (StudyError, OSError, UnicodeDecodeError) as error:  # refused requests, unreadable paths or files
        raise gr.Error(str(error)) from error
    except DATABASE_ERRORS as error:
        raise gr.Error(DATABASE_UNAVAILABLE) from error


def database_unavailable(error: gr.Error) -> bool:
    """Whether a ``gr.Error`` of :func:`user_action` means the database could not be reached (see
    :data:`DATABASE_ERRORS`): the action changed nothing and may succeed when repeated."""
    return isinstance(error.__cause__, DATABASE_ERRORS)


def shows_errors(handler: Callable) -> Callable:
    """Decorate an event handler so a refused action (``gr.Error``) shows as a warning toast and changes nothing.

    Raising ``gr.Error`` out of a handler would mark every output component of the event as failed (a red
    overlay on each); returning no updates keeps the screen as it was, so the user can correct and retry.
    """

    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except gr.Error as error:
            gr.Warning(error.message)
            return gr.skip()  # Gradio leaves every output of the event unchanged

    return wrapper


def follow_study_choice(chosen: gr.State, tab: gr.Tab, study: gr.Dropdown, show: Callable, outputs: list) -> None:
    """Make a coordinator tab's ``study`` dropdown one view of the coordinator's single study choice ``chosen``
    (a ``gr.State`` holding a study name): whatever the dropdown comes to show (a pick, a newly created study) becomes
    the choice, and selecting ``tab`` while it shows another study calls ``show(name, request)``, the tab's handler
    that returns its ``outputs`` for study ``name`` (as :func:`shows_errors` handlers do)."""
    study.change(lambda name: name, study, chosen, api_visibility="private")

    def on_select(name, shown, request: gr.Request):
        if name is None or name == shown:
            return [gr.skip()] * len(outputs)
        return show(name, request)

    tab.select(on_select, [chosen, study], outputs, api_visibility="private")

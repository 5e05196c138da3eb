"""The web application: our own sign-in routes, the readers' and the coordinators' Gradio apps under their own
paths, and one gate in front of everything.

- ``GET/POST /login``: the sign-in form. A correct username and password open a sign-in session
  (``studyapp.services.signins``: a random token in an HTTP-only cookie, its hash in the database) and lead to the
  user's app; failures are throttled per account and per client address (``studyapp.web.throttle``) and audited.
  Browsers (``Accept: text/html``) get pages and redirects, other clients JSON: ``{"success": true, "redirect":
  "/"}``, or ``{"detail": ...}`` with 401 (wrong credentials) or 429 (throttled, ``Retry-After`` header).
- ``GET /logout``: ends the session for good (the cookie is refused everywhere afterwards) and shows the form.
- ``/``: the readers' app; ``/coordinator/``: the coordinators' app. Each Gradio app admits only its role
  (``auth_dependency``), so a reader's ``/config`` never holds the coordinator screens.
- The gate (:class:`Gate`) refuses every other route without a live session: 401 (or a redirect to the form for
  a page), 403 for the other role's app, including routes Gradio leaves open (``/gradio_api/cancel``, ``reset``).
  A session ended after its idle time is let through only to the event queue, so the screen's handlers can tell
  the user they were signed out. While the server drains on SIGTERM, new work is refused with 503.
- Every answer carries a Content-Security-Policy that lets the page load images, scripts, styles, fonts and
  connections from the app's own origin only (:data:`CONTENT_SECURITY_POLICY`), and is never framed elsewhere.
"""

from __future__ import annotations

import html
from pathlib import Path

import gradio as gr
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from studyapp.db.models import ROLE_COORDINATOR, ROLE_READER
from studyapp.dicom import series_cache
from studyapp.services import accounts, audit
from studyapp.services.signins import END_IDLE, END_SIGNED_OUT, SignIn
from studyapp.ui.app import CSS, HEAD, build_coordinator_app, build_reader_app
from studyapp.ui.context import UIContext
from studyapp.ui.signin import COOKIE_NAME, sign_in_token

#: Where each role's app is served.
HOMES = {ROLE_READER: "/", ROLE_COORDINATOR: "/coordinator/"}
COORDINATOR_PREFIX = "/coordinator"
#: Own origin only for every kind of resource. Gradio's page needs inline scripts and styles (its config is an
#: inline script) and evaluates the event functions (``js=``), hence 'unsafe-inline' and 'unsafe-eval' for scripts;
#: neither lets the page load anything from another origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; media-src 'self' data: blob:; "
    "worker-src 'self' blob:; frame-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'self'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
#: The routes an idle-expired session still reaches: the event queue, whose handlers then say "signed out".
_EVENT_QUEUE = ("/gradio_api/queue/join", "/gradio_api/queue/data")
_NOTICES = {
    "signed_out": "You are signed out.",
    "expired": "You were signed out after a time without activity. Sign in again to continue; your saved text is kept.",
}
_FORM = (Path(__file__).parent / "signin.html").read_text()


def _app_path(path: str) -> tuple[str, str]:
    """``(role, path inside that role's app)`` of a request path."""
    if path == COORDINATOR_PREFIX or path.startswith(COORDINATOR_PREFIX + "/"):
        return ROLE_COORDINATOR, path[len(COORDINATOR_PREFIX):] or "/"
    return ROLE_READER, path


def admitted(ctx: UIContext, request: HTTPConnection, role: str) -> SignIn | None:
    """The live sign-in of ``request`` if it may use ``role``'s app at this path (an idle-ended one only on the
    event queue), else ``None``."""
    entry = ctx.sign_ins.lookup(sign_in_token(request))
    if entry is None or entry.role != role or entry.ended == END_SIGNED_OUT:
        return None
    if entry.ended == END_IDLE and not _app_path(request.url.path)[1].startswith(_EVENT_QUEUE):
        return None
    return entry


class Gate:
    """ASGI middleware: security headers on every answer; sign-in, role and draining checks before the apps."""

    def __init__(self, app, ctx: UIContext):
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *(h for h in SECURITY_HEADERS if h[0] not in names)]
            await send(message)

        refusal = await run_in_threadpool(self._refusal, HTTPConnection(scope), scope.get("method", "GET"))
        if refusal is None:
            return await self.app(scope, receive, with_headers)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        await refusal(scope, receive, with_headers)

    def _refusal(self, request: HTTPConnection, method: str) -> Response | None:
        path = request.url.path
        if path in ("/login", "/logout"):
            return None
        if self.ctx.work.draining and method == "POST":
            return JSONResponse({"detail": "the server is restarting; your text is kept in the page, it is saved "
                                           "when the server is back"}, status_code=503, headers={"Retry-After": "5"})
        role, inner = _app_path(path)
        entry = self.ctx.sign_ins.lookup(sign_in_token(request))
        page = method in ("GET", "HEAD") and inner == "/"
        if entry is None or entry.ended == END_SIGNED_OUT or (entry.ended and not inner.startswith(_EVENT_QUEUE)):
            if page:
                notice = "expired" if entry is not None and entry.ended == END_IDLE else ""
                return RedirectResponse(f"/login?notice={notice}", status_code=303)
            return JSONResponse({"detail": "sign in first"}, status_code=401)
        if entry.role != role:
            if page:
                return RedirectResponse(HOMES[entry.role], status_code=303)
            return JSONResponse({"detail": f"not for a {entry.role} account"}, status_code=403)
        if path == COORDINATOR_PREFIX:
            return RedirectResponse(HOMES[ROLE_COORDINATOR], status_code=307)
        return None


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _form_page(notice: str = "", username: str = "", status_code: int = 200, headers: dict | None = None
               ) -> HTMLResponse:
    notice_html = f'<p class="notice" role="alert">{html.escape(notice)}</p>' if notice else ""
    page = _FORM.replace("{notice}", notice_html).replace("{username}", html.escape(username, quote=True))
    return HTMLResponse(page, status_code=status_code, headers={"Cache-Control": "no-store", **(headers or {})})


def _refuse(request: Request, message: str, username: str, status_code: int, headers: dict | None = None
            ) -> Response:
    if _wants_html(request):
        return _form_page(message, username, status_code, headers)
    return JSONResponse({"detail": message}, status_code=status_code, headers=headers)


def build_web_app(ctx: UIContext) -> FastAPI:
    """The whole web application (serve it with ``studyapp.web.server.serve`` or any ASGI server); decoded frames
    are kept on disk under ``{data_dir}/frames`` from now on (``studyapp.dicom.series_cache.configure``)."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    series_cache.configure(Path(ctx.settings.data_dir) / "frames", int(ctx.settings.frame_store_mb * 2**20))
    with ctx.sessions() as session:
        accounts.authenticate(session, "", "")  # make the dummy hash now, not on the first unknown username

    @app.get("/login")
    def login_form(request: Request, notice: str = ""):
        entry = ctx.sign_ins.lookup(sign_in_token(request))
        if entry is not None and entry.ended is None:
            return RedirectResponse(HOMES[entry.role], status_code=303)
        return _form_page(_NOTICES.get(notice, ""))

    @app.post("/login")
    async def login(request: Request):
        form = await request.form()
        username = str(form.get("username") or "").strip()[:128]
        password = str(form.get("password") or "")[:1024]
        client = request.client.host if request.client else ""
        wait = ctx.throttle.wait_s(username, client)
        if wait > 0:
            seconds = int(wait) + 1
            return _refuse(request, f"Too many failed sign-ins for this account or from this address: try again in "
                                    f"{seconds} s.", username, 429, {"Retry-After": str(seconds)})
        token, role = await run_in_threadpool(_check, username, password, client)
        if token is None:
            return _refuse(request, "Wrong username or password.", username, 401)
        home = HOMES[role]
        response = (RedirectResponse(home, status_code=303) if _wants_html(request)
                    else JSONResponse({"success": True, "redirect": home}))
        response.set_cookie(COOKIE_NAME, token, httponly=True, samesite="lax", secure=request.url.scheme == "https",
                            path="/")
        return response

    def _check(username: str, password: str, client: str) -> tuple[str | None, str | None]:
        locked = ctx.throttle.failed(username, client)  # counted before checking: parallel guesses wait too
        with ctx.sessions.begin() as session:
            user = accounts.authenticate(session, username, password)
            if user is None:
                known = accounts.find_user(session, username)
                audit.record(session, "sign_in_failed", user=known, username=username[:128], client=client,
                             locked=locked)
                return None, None
            ctx.throttle.succeeded(username, client)
            return ctx.sign_ins.start(session, user, client), user.role

    @app.get("/logout")
    def logout(request: Request):
        ctx.sign_ins.end(sign_in_token(request), END_SIGNED_OUT)
        response = RedirectResponse("/login?notice=signed_out", status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/")
        return response

    def auth_for(role: str):
        def username(request: Request) -> str | None:
            entry = admitted(ctx, request, role)
            return entry.username if entry is not None else None
        return username

    common = {"head": HEAD, "css": CSS, "footer_links": ["api"] if ctx.settings.show_api else []}
    gr.mount_gradio_app(app, build_coordinator_app(ctx), path=COORDINATOR_PREFIX,
                        auth_dependency=auth_for(ROLE_COORDINATOR), **common)
    gr.mount_gradio_app(app, build_reader_app(ctx), path="/", auth_dependency=auth_for(ROLE_READER), **common)
    app.add_middleware(Gate, ctx=ctx)
    return app


def gradio_apps(app: FastAPI) -> list:
    """The Gradio apps (``gradio.routes.App``) mounted in ``app`` (for the graceful stop: queues, streams)."""
    return [route.app for route in app.routes if hasattr(getattr(route, "app", None), "get_blocks")]


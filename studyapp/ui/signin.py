"""The sign-in cookie of the web app (``studyapp.web.app`` sets it; ``studyapp.services.signins`` keeps the
sessions): its name, reading it from a request, and where a signed-out user goes to sign in again."""

#: The HTTP-only cookie holding a browser's sign-in token (the same name across restarts).
COOKIE_NAME = "studyapp-session"
#: Where a signed-out user goes to sign in again (ends the session, clears the cookie, shows the sign-in form).
SIGN_IN_AGAIN_URL = "/logout"


def sign_in_token(request) -> str | None:
    """The sign-in cookie's token of a ``gr.Request`` or Starlette request (``None`` without one)."""
    try:
        token = request.cookies.get(COOKIE_NAME)
    except AttributeError:
        return None
    return token or None


from studyapp.services.signins import SessionExpired  # noqa: E402,F401  (the tabs catch it from here)

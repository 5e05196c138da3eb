"""The password policy of accounts: long enough and not guessable (NIST SP 800-63B section 5.1.1.2).

A password is refused when it is shorter than :data:`MIN_LENGTH` characters, only white space, or easy to guess
by the estimate of ``zxcvbn`` (Dropbox's strength estimator; its lists hold the 30,000 most common passwords,
common words and names, keyboard patterns, repeats and sequences, and it is told the account's username and display
name so a password built from them is refused too). The refusal says why, in zxcvbn's words.
"""

from zxcvbn import zxcvbn

from studyapp.services.errors import InvalidInput

#: Fewest characters of a password.
MIN_LENGTH = 8
#: Lowest zxcvbn score accepted (0 too guessable ... 4 very unguessable; 2 means about 10^6 guesses or more:
#: "somewhat guessable", safe against online guessing, which the sign-in throttling limits further).
MIN_SCORE = 2


def check_password(password: str, username: str = "", display_name: str = "") -> None:
    """Refuse a password a guesser would try early.

    Args:
        password: the new password.
        username, display_name: of the account; a password made of them is refused.

    Raises:
        InvalidInput: shorter than ``MIN_LENGTH`` characters, only white space, or a zxcvbn score below
            ``MIN_SCORE`` (a common password, a word, a repeat or sequence, the username); the message says which.
    """
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"the password is shorter than {MIN_LENGTH} characters")
    if not password.strip():
        raise InvalidInput("the password is only spaces")
    estimate = zxcvbn(password[:100], user_inputs=[name for name in (username, display_name) if name])
    if estimate["score"] < MIN_SCORE:
        feedback = estimate["feedback"]
        why = feedback.get("warning") or "It is too easy to guess."
        hints = " ".join(feedback.get("suggestions") or [])
        raise InvalidInput(f"the password is too easy to guess: {why.rstrip('.')}. {hints}".strip())

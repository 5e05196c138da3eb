"""The password policy refuses the passwords a guesser tries first, and says why; good passwords pass."""

import pytest

from studyapp.services import accounts
from studyapp.services.errors import InvalidInput
from studyapp.services.passwords import check_password


@pytest.mark.parametrize("password, why", [
    ("12345678", "top-10 common password"),
    ("password", "top-10 common password"),
    ("        ", "only spaces"),
    ("Password1", "common password"),
    ("zxcvbnm,./", "Straight rows of keys"),
    ("abcdefghij", "Sequences"),
    ("aaaaaaaaaaaa", "Repeats"),
    ("short", "shorter than 8 characters"),
])
def test_common_and_trivial_passwords_are_refused_with_the_reason(password, why):
    with pytest.raises(InvalidInput, match=why):
        check_password(password)


def test_a_password_made_of_the_username_is_refused_and_good_ones_pass():
    with pytest.raises(InvalidInput, match="too easy to guess"):
        check_password("drsmith2024", username="drsmith")
    check_password("crash-reader-password")
    check_password("orbit lantern granite 42")


def test_accounts_use_the_policy(db):
    with db.begin() as s:
        with pytest.raises(InvalidInput, match=r"password for 'reader9' refused: the password is too easy to guess: "
                                               r"This is a top-10 common password"):
            accounts.add_user(s, "reader9", "12345678")
        assert accounts.list_users(s) == []

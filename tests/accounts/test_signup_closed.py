from accounts.models import User
from tests.conftest import PASSWORD

SIGNUP = "/accounts/signup/"


def test_it_says_sign_up_is_by_invitation(client, db):
    response = client.get(SIGNUP)

    assert b"Sign-up is by invitation" in response.content
    assert b"css/site.css" in response.content
    assert b'name="password1"' not in response.content


def test_it_creates_no_account_on_post(client, db):
    response = client.post(
        SIGNUP, {"username": "gatecrasher", "password1": PASSWORD, "password2": PASSWORD}
    )

    assert b"Sign-up is by invitation" in response.content
    assert not User.objects.filter(username="gatecrasher").exists()

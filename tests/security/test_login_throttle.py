"""Login throttling: allauth's rate limits (ACCOUNT_RATE_LIMITS) stop password
guessing. Five failures for one username in five minutes lock that username
(even the right password is refused), ten failures a minute lock an address,
and more than thirty login attempts a minute from one address get 429."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
TOO_MANY = "Too many failed login attempts"


def _login(client: Client, username: str, password: str = "wrong password", **headers):
    return client.post(LOGIN, {"login": username, "password": password}, **headers)


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_it_refuses_the_sixth_attempt_for_one_username(owner, friend):
    attacker = Client(REMOTE_ADDR="203.0.113.7")
    for _ in range(5):
        response = _login(attacker, "owner")
        assert response.status_code == 200 and TOO_MANY not in response.content.decode()
    # The sixth is refused before the password is looked at: even the right one.
    response = _login(attacker, "OWNER", PASSWORD)
    assert TOO_MANY in response.content.decode()
    assert not _signed_in(attacker)
    # From anywhere: the lock is on the username, not the address.
    elsewhere = Client(REMOTE_ADDR="198.51.100.9")
    assert TOO_MANY in _login(elsewhere, "owner", PASSWORD).content.decode()
    # Other players are not locked out.
    _login(elsewhere, "friend", PASSWORD)
    assert _signed_in(elsewhere)


def test_it_refuses_an_address_that_keeps_failing(owner, friend, outsider):
    attacker = Client(REMOTE_ADDR="203.0.113.7")
    for n in range(10):
        _login(attacker, f"guess{n}")
    response = _login(attacker, "outsider", PASSWORD)
    assert TOO_MANY in response.content.decode()
    assert not _signed_in(attacker)


def test_it_answers_429_to_a_flood_of_logins(owner):
    attacker = Client(REMOTE_ADDR="203.0.113.7")
    statuses = [_login(attacker, f"guess{n}").status_code for n in range(31)]
    assert statuses[:30] == [200] * 30
    assert statuses[30] == 429


def test_it_throttles_each_client_behind_the_proxy(settings, owner, friend):
    """Behind the reverse proxy every request comes from the proxy's address;
    the limits must count the client the proxy names, or one attacker would
    lock everyone out (ALLAUTH_TRUSTED_PROXY_COUNT, docs/deploy.md)."""
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    attacker = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.7")
    for n in range(10):
        _login(attacker, f"guess{n}")
    assert TOO_MANY in _login(attacker, "owner", PASSWORD).content.decode()
    player = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.9")
    _login(player, "friend", PASSWORD)
    assert _signed_in(player)
    # A client cannot pick its own address: the proxy appends the real one.
    spoofer = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.7")
    assert TOO_MANY in _login(spoofer, "friend", PASSWORD).content.decode()


def test_it_trusts_no_forwarded_address_without_a_proxy(owner, friend):
    # Without DJANGO_HTTPS there is no proxy (and with it, one: test_hardening),
    # so a client's own X-Forwarded-For cannot move it to a fresh address.
    attacker = Client(REMOTE_ADDR="203.0.113.7")
    for n in range(10):
        _login(attacker, f"guess{n}", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}")
    response = _login(attacker, "friend", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.99")
    assert TOO_MANY in response.content.decode()

from datetime import timedelta

from django.contrib.sessions.models import Session
from django.utils import timezone


def test_it_ends_sessions_after_the_idle_days(settings):
    assert settings.SESSION_COOKIE_AGE == settings.SESSION_IDLE_DAYS * 24 * 3600
    assert settings.SESSION_SAVE_EVERY_REQUEST is True


def test_it_pushes_the_expiry_back_on_every_request(owner_client, settings):
    owner_client.get("/")
    key = owner_client.session.session_key
    soon = timezone.now() + timedelta(hours=1)
    Session.objects.filter(session_key=key).update(expire_date=soon)

    response = owner_client.get("/")

    session = Session.objects.get(session_key=key)
    expected = timezone.now() + timedelta(days=settings.SESSION_IDLE_DAYS)
    assert abs(session.expire_date - expected) < timedelta(seconds=30)
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert int(cookie["max-age"]) == settings.SESSION_COOKIE_AGE

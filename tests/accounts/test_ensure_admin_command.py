from io import StringIO

from django.core.management import call_command

from accounts.models import User


def _run(*args) -> str:
    out = StringIO()
    call_command("ensure_admin", *args, stdout=out)
    return out.getvalue()


def test_it_creates_an_admin_and_prints_its_password_once(db):
    output = _run("--username", "boss")

    password = output.strip().splitlines()[-1].split("password:")[1].strip()
    admin = User.objects.get(username="boss")
    assert admin.is_superuser and admin.is_staff
    assert admin.check_password(password)


def test_it_does_nothing_when_an_admin_exists(staff):
    output = _run()

    assert "exists already" in output
    assert User.objects.filter(is_superuser=True).count() == 1

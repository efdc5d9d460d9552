import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_choice, env_float, env_int, env_list, env_str, env_url


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    for name in ("VGP_T", "VGP_T_FILE"):
        monkeypatch.delenv(name, raising=False)


def test_it_reads_a_value_or_falls_back_to_the_default(monkeypatch):
    assert env_str("VGP_T", "fallback") == "fallback"
    monkeypatch.setenv("VGP_T", "  value  ")
    assert env_str("VGP_T") == "value"


def test_it_treats_a_blank_value_as_unset(monkeypatch):
    monkeypatch.setenv("VGP_T", "   ")

    assert env_str("VGP_T", "fallback") == "fallback"


def test_it_reads_a_file_variant_first(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    monkeypatch.setenv("VGP_T", "from-env")
    monkeypatch.setenv("VGP_T_FILE", str(secret))

    assert env_str("VGP_T") == "from-file"


def test_it_names_an_unreadable_file(monkeypatch, tmp_path):
    monkeypatch.setenv("VGP_T_FILE", str(tmp_path / "missing"))

    with pytest.raises(ImproperlyConfigured, match="VGP_T_FILE: cannot read"):
        env_str("VGP_T")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("on", True), ("false", False), ("0", False)],
)
def test_it_reads_strict_booleans(monkeypatch, value, expected):
    monkeypatch.setenv("VGP_T", value)

    assert env_bool("VGP_T", not expected) is expected


def test_it_rejects_a_vague_boolean(monkeypatch):
    monkeypatch.setenv("VGP_T", "yes please")

    with pytest.raises(ImproperlyConfigured, match="VGP_T: expected true or false"):
        env_bool("VGP_T", False)


def test_it_reads_whole_numbers_with_separators(monkeypatch):
    monkeypatch.setenv("VGP_T", "1_000,000")

    assert env_int("VGP_T", 0) == 1_000_000


def test_it_rejects_a_word_for_a_number(monkeypatch):
    monkeypatch.setenv("VGP_T", "lots")

    with pytest.raises(ImproperlyConfigured, match="VGP_T: expected a whole number"):
        env_int("VGP_T", 0)


def test_it_enforces_a_minimum(monkeypatch):
    monkeypatch.setenv("VGP_T", "0")

    with pytest.raises(ImproperlyConfigured, match="VGP_T: must be at least 1"):
        env_int("VGP_T", 5, minimum=1)
    monkeypatch.setenv("VGP_T", "-3")
    assert env_int("VGP_T", 5, minimum=None) == -3


def test_it_reads_floats(monkeypatch):
    monkeypatch.setenv("VGP_T", "2.5")
    assert env_float("VGP_T", 1.0) == 2.5
    monkeypatch.setenv("VGP_T", "soon")
    with pytest.raises(ImproperlyConfigured, match="VGP_T: expected a number"):
        env_float("VGP_T", 1.0)


def test_it_reads_comma_lists(monkeypatch):
    assert env_list("VGP_T", ["a"]) == ["a"]
    monkeypatch.setenv("VGP_T", "a.example, b.example")
    assert env_list("VGP_T", []) == ["a.example", "b.example"]
    monkeypatch.setenv("VGP_T", "a,,b")
    with pytest.raises(ImproperlyConfigured, match="VGP_T: empty item"):
        env_list("VGP_T", [])


def test_it_reads_a_choice(monkeypatch):
    monkeypatch.setenv("VGP_T", "demo")
    assert env_choice("VGP_T", ("demo", "ollama"), None) == "demo"
    monkeypatch.setenv("VGP_T", "gpt")
    with pytest.raises(ImproperlyConfigured, match="VGP_T: expected one of demo, ollama"):
        env_choice("VGP_T", ("demo", "ollama"), None)


def test_it_checks_url_schemes(monkeypatch):
    assert env_url("VGP_T", None, schemes=("redis",)) is None
    monkeypatch.setenv("VGP_T", "redis://cache:6379/0")
    assert env_url("VGP_T", None, schemes=("redis",)) == "redis://cache:6379/0"
    monkeypatch.setenv("VGP_T", "http://cache")
    with pytest.raises(ImproperlyConfigured, match="VGP_T: expected a URL starting with redis://"):
        env_url("VGP_T", None, schemes=("redis",))

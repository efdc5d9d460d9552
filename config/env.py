"""Typed readers for environment variables.

Each reader rejects a malformed value with `ImproperlyConfigured` naming the
variable, so a typo stops start-up instead of silently meaning something else.
Every `*_FILE` variant reads the value from a file (for container secrets).
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def env_str(name: str, default: str | None = None) -> str | None:
    """The value of `name`, or of the file named by `name_FILE`, else `default`."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {file_name!r}: {exc}") from exc
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def env_bool(name: str, default: bool) -> bool:
    value = env_str(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}: expected true or false, got {value!r}")


def env_int(name: str, default: int, *, minimum: int | None = 0) -> int:
    value = env_str(name)
    if value is None:
        return default
    try:
        number = int(value.replace("_", "").replace(",", ""))
    except ValueError:
        raise ImproperlyConfigured(f"{name}: expected a whole number, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}: must be at least {minimum}, got {number}")
    return number


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    value = env_str(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}: expected a number, got {value!r}") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name}: must be at least {minimum}, got {number}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = env_str(name)
    if value is None:
        return list(default)
    items = [item.strip() for item in value.split(",")]
    if any(not item for item in items):
        raise ImproperlyConfigured(f"{name}: empty item in comma list {value!r}")
    return items


def env_choice(name: str, choices: tuple[str, ...], default: str | None) -> str | None:
    value = env_str(name)
    if value is None:
        return default
    if value not in choices:
        raise ImproperlyConfigured(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def env_url(name: str, default: str | None, *, schemes: tuple[str, ...]) -> str | None:
    value = env_str(name)
    if value is None:
        return default
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in schemes:
        raise ImproperlyConfigured(
            f"{name}: expected a URL starting with {' or '.join(s + '://' for s in schemes)}, "
            f"got {value!r}"
        )
    return value

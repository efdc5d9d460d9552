"""config.asgi: the application the ASGI servers run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc, json
before = len(gc.get_objects())
import config.asgi
from django.urls import get_resolver
print(json.dumps({
    "frozen": gc.get_freeze_count(),
    "tracked": len(gc.get_objects()),
    "urlconf_loaded": "url_patterns" in get_resolver().__dict__,
}))
"""


def test_start_up_objects_are_frozen_out_of_the_collectors_passes(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    env.pop("REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    state = json.loads(done.stdout.strip().splitlines()[-1])
    # Django, the apps, the backends and the URLconf: far more than what is left.
    assert state["frozen"] > 100_000
    assert state["tracked"] < state["frozen"] // 10
    assert state["urlconf_loaded"]

"""manage.py builds Django's long-lived objects with the garbage collector paused and then freezes them
(docs/performance.md, ingestion), without changing how it reads its settings."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def manage(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def test_what_set_up_built_is_frozen_and_the_collector_runs_again():
    result = manage("shell", "-c", "import gc; print(gc.get_freeze_count() > 50_000, gc.isenabled())")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["True", "True"]


def test_settings_given_on_the_command_line_are_the_ones_read(tmp_path):
    (tmp_path / "probe_settings.py").write_text('from config.settings import *  # noqa\nLANGUAGE_CODE = "en"\n')
    result = manage("shell", "-c", "from django.conf import settings; print(settings.LANGUAGE_CODE)",
                    "--pythonpath", str(tmp_path), "--settings", "probe_settings")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "en"


def test_help_still_lists_the_commands_when_the_settings_cannot_be_read():
    result = manage("help", env={"DATABASE_URL": "ftp://nowhere/db"})
    assert result.returncode == 0, result.stderr
    assert "settings are not properly configured" in result.stdout
    assert "DATABASE_URL scheme must be sqlite or postgres" in result.stdout

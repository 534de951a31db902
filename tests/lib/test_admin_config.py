"""The admin's modules are imported when something needs them (lib/admin_config.py): not by a command's
start-up, but by the URLconf and by the system checks, which still check every ModelAdmin."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
import django
django.setup()
from django.contrib import admin
from documents.models import Document
print("start-up", admin.site.is_registered(Document), "documents.admin" in sys.modules)
from django.core.management import call_command
call_command("check", verbosity=0)
print("checks", admin.site.is_registered(Document), "training.admin" in sys.modules)
"""


def test_a_command_starts_without_the_admin_modules_and_the_checks_discover_them():
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith(("start-up", "checks"))]
    assert lines == ["start-up False False", "checks True True"]


def test_the_urlconf_registers_every_app_s_admin(db):
    from django.contrib import admin

    import config.urls  # noqa: F401
    from annotation.models import DocumentClass
    from documents.models import Document
    from training.models import TrainingRun

    assert all(admin.site.is_registered(model) for model in (Document, DocumentClass, TrainingRun))

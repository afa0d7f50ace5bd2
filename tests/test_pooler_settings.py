"""Behind PgBouncer in transaction mode: DB_DISABLE_SERVER_SIDE_CURSORS turns Django's server-side
cursors off (see "Running on several machines" in the README)."""

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]
SHOW = "from django.db import connection; print(connection.settings_dict['DISABLE_SERVER_SIDE_CURSORS'])"


def test_server_side_cursors_are_turned_off_for_a_transaction_pooler_and_only_then():
    assert "DB_DISABLE_SERVER_SIDE_CURSORS" not in os.environ
    assert settings.DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] is False
    shown = subprocess.run([sys.executable, "manage.py", "shell", "-c", SHOW], cwd=ROOT, capture_output=True,
                           text=True, timeout=120, env={**os.environ, "DB_DISABLE_SERVER_SIDE_CURSORS": "true",
                                                        "DATABASE_URL": "postgres://flowdeck@pgbouncer.internal:6432/fd"})
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[-1] == "True"

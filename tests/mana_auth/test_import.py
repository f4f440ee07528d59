"""The library stands on its own: no provider apps and no Django just to import it."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_needs_neither_django_nor_the_provider_apps():
    code = (
        "import os, sys; assert 'DJANGO_SETTINGS_MODULE' not in os.environ\n"
        "import mana_auth\n"
        "mana_auth.TokenVerifier, mana_auth.Client, mana_auth.Principal, mana_auth.InvalidToken\n"
        "loaded = sorted(m for m in ('identity', 'accounts', 'sessions_app', 'config', 'django', 'rest_framework')\n"
        "                if m in sys.modules)\n"
        "print(loaded)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd="/", capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

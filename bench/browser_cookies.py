"""Print a Cookie header for a fresh browser session of the bench user (session cookie + cache cookie).

    DJANGO_SETTINGS_MODULE=config.settings .venv/bin/python bench/browser_cookies.py EMAIL [--no-cache]
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from accounts.models import User  # noqa: E402
from sessions_app.app_settings import app_settings  # noqa: E402
from sessions_app.browser import snapshot_for  # noqa: E402
from sessions_app.services import session_browser_key_issue, session_create  # noqa: E402

user = User.objects.get(email=sys.argv[1])
row = session_create(user=user, remember_me=True, device_name="bench browser", tokens=False).session
raw = session_browser_key_issue(row)
cookies = [f"{app_settings.SESSION_COOKIE}={raw}"]
if "--no-cache" not in sys.argv:
    cookies.append(f"{app_settings.CACHE_COOKIE}={snapshot_for(row, raw)}")
print("; ".join(cookies))

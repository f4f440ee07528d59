"""Print a Cookie header for a fresh browser session of the bench user (session cookie + cache cookie).

    DJANGO_SETTINGS_MODULE=config.settings .venv/bin/python bench/browser_cookies.py EMAIL [--no-cache] [--org]

--org: the session has an organization active (the bench user owns "Bench Org"), so GET token carries
``org``/``orgRole`` and the cache hit's MGET reads the organization's mark too.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from accounts.models import User  # noqa: E402
from orgs.models import Membership, Organization, OrgRole  # noqa: E402
from sessions_app.app_settings import app_settings  # noqa: E402
from sessions_app.browser import snapshot_for  # noqa: E402
from sessions_app.models import DeviceSession  # noqa: E402
from sessions_app.services import session_browser_key_issue, session_create  # noqa: E402

user = User.objects.get(email=sys.argv[1])
row = session_create(user=user, remember_me=True, device_name="bench browser", tokens=False).session
if "--org" in sys.argv:
    org, _ = Organization.objects.get_or_create(slug="bench-org", defaults={"name": "Bench Org"})
    Membership.objects.get_or_create(user=user, organization=org, defaults={"role": OrgRole.OWNER})
    DeviceSession.objects.filter(pk=row.pk).update(active_organization=org)
    row.refresh_from_db()
raw = session_browser_key_issue(row)
cookies = [f"{app_settings.SESSION_COOKIE}={raw}"]
if "--no-cache" not in sys.argv:
    cookies.append(f"{app_settings.CACHE_COOKIE}={snapshot_for(row, raw)}")
print("; ".join(cookies))

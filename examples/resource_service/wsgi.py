"""gunicorn --chdir examples resource_service.wsgi (or from anywhere: examples/resource_service/wsgi.py sets paths)."""

import os

from resource_service import _paths  # noqa: F401  (sys.path for mana_auth in a plain checkout)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resource_service.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()

import os
import sys

from celery import Celery

from core.database import mark_job_process

if sys.argv and (os.path.basename(sys.argv[0]).startswith("celery")
                 or sys.argv[0].endswith(os.path.join("celery", "__main__.py"))):
    mark_job_process()  # `celery worker` / `celery beat`: the long database timeouts (docs/deploy.md)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("mana_core_auth")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

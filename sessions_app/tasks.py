from celery import shared_task

from sessions_app.services import sessions_cleanup as _sessions_cleanup


@shared_task
def sessions_cleanup():
    return _sessions_cleanup()

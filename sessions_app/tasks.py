from celery import shared_task

from sessions_app.cookie_cache import revocation_marks_resend as _revocation_marks_resend
from sessions_app.services import sessions_cleanup as _sessions_cleanup


@shared_task
def sessions_cleanup():
    return _sessions_cleanup()


@shared_task
def revocation_marks_resend():
    """Cookie-cache marks kept in the database while Redis did not answer go out once it does."""
    return _revocation_marks_resend()

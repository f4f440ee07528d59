from celery import shared_task

from passkeys.services import ceremonies_cleanup as _ceremonies_cleanup


@shared_task
def ceremonies_cleanup():
    """Delete the challenges past their expiry (answered or not): they can never be used again."""
    return _ceremonies_cleanup()

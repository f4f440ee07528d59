from celery import shared_task

from security import services


@shared_task(ignore_result=True)
def security_tokens_cleanup() -> int:
    """Daily: spent or expired unlock / not-me tokens, and known devices that ended."""
    from security.lockout import known_devices_cleanup

    removed = services.security_tokens_cleanup()
    return removed + known_devices_cleanup()

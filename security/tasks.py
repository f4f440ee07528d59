from celery import shared_task

from security import services
from security.lockout import known_devices_cleanup, second_factor_failures_cleanup


@shared_task(ignore_result=True)
def security_tokens_cleanup() -> int:
    """Daily: spent or expired unlock / not-me tokens, known devices that ended, and wrong second-factor
    codes that no longer count."""
    removed = services.security_tokens_cleanup()
    return removed + known_devices_cleanup() + second_factor_failures_cleanup()

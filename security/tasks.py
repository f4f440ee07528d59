from celery import shared_task

from security import services


@shared_task(ignore_result=True)
def audit_retention_enforce() -> int:
    """Daily: audit rows past SECURITY["AUDIT_RETENTION_DAYS"] (a chain checkpoint stays), spent or
    expired unlock / not-me tokens, and known devices that ended."""
    from security.lockout import known_devices_cleanup

    services.security_tokens_cleanup()
    known_devices_cleanup()
    return services.audit_retention_enforce()

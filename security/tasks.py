from celery import shared_task

from security import services


@shared_task(ignore_result=True)
def audit_retention_enforce() -> int:
    """Daily: audit rows past SECURITY["AUDIT_RETENTION_DAYS"] (a chain checkpoint stays), and spent or
    expired unlock / not-me tokens."""
    services.security_tokens_cleanup()
    return services.audit_retention_enforce()

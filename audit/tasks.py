from celery import shared_task

from audit import services


@shared_task(ignore_result=True)
def audit_refusals_flush() -> int:
    """Every minute: the summary rows of refusals that were counted instead of written (flood control)."""
    return services.audit_refusals_flush()


@shared_task(ignore_result=True)
def audit_retention_enforce() -> int:
    """Daily: audit rows past AUDIT["RETENTION_DAYS"] go (a chain checkpoint stays)."""
    return services.audit_retention_enforce()


@shared_task(ignore_result=True)
def audit_seal() -> int:
    """Every second: seal the audit rows written since the last seal into the hash chain."""
    return services.audit_seal().rows

from celery import shared_task

from security import services


@shared_task(ignore_result=True)
def audit_retention_enforce() -> int:
    return services.audit_retention_enforce()

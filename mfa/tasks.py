from celery import shared_task

from mfa import services


@shared_task(ignore_result=True)
def mfa_cleanup() -> int:
    """Hourly: sign-ins that waited for their second factor past their five minutes, and trusted devices
    that expired or ended more than a day ago."""
    return services.challenges_cleanup() + services.trusted_devices_cleanup()

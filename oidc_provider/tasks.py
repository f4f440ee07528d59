from celery import shared_task

from oidc_provider.services.authorization import oidc_codes_cleanup as _oidc_codes_cleanup


@shared_task
def oidc_codes_cleanup():
    return _oidc_codes_cleanup()

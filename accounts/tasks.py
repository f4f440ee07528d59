from celery import shared_task

from accounts import services


@shared_task
def account_tokens_cleanup():
    return services.account_tokens_cleanup()

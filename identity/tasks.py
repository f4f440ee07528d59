from celery import shared_task

from identity.services.keys import signing_keys_rotate_if_due as _rotate_if_due


@shared_task
def signing_keys_rotate_if_due():
    key = _rotate_if_due()
    return key.kid if key else None

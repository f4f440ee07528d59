from celery import shared_task

from orgs.services import invitations_cleanup as _invitations_cleanup


@shared_task
def invitations_cleanup():
    return _invitations_cleanup()

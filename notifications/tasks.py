from celery import shared_task

from notifications import services


@shared_task(ignore_result=True)
def outbox_deliver(message_id):
    return services.outbox_deliver(message_id)


@shared_task(ignore_result=True)
def outbox_flush():
    return services.outbox_flush()

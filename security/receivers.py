"""Framework signals into the audit trail (one-liners): every Django admin change, e.g. to users or
sessions, and every lockout lifted by deleting its django-axes record (admin or code)."""

from django.contrib.admin.models import LogEntry
from django.db.models.signals import post_save
from django.dispatch import receiver

from security.services import admin_action_record


@receiver(post_save, sender=LogEntry, dispatch_uid="security.admin_log_entry")
def _admin_log_entry(sender, instance, created, **kwargs):
    if created:
        admin_action_record(instance)

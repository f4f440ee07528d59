"""Reading the audit trail."""

from django.db.models import Q

from audit.models import AuditEvent


def security_events_for(user):
    """The rows a user may see about themselves: where they are the subject or the actor, newest first."""
    return AuditEvent.objects.filter(Q(subject_id=user.pk) | Q(actor_id=user.pk)).order_by("-created_at", "-id")

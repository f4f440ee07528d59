"""The outbox's gauges, read from its rows when /metrics is scraped (core/metrics.py)."""

from __future__ import annotations

from django.db.models import Count, Min, Q
from django.utils import timezone

from core.metrics import gauge
from notifications.models import OutboxMessage, OutboxStatus


def outbox_gauges():
    now = timezone.now()
    totals = OutboxMessage.objects.aggregate(
        pending=Count("pk", filter=Q(status=OutboxStatus.PENDING)),
        failed=Count("pk", filter=Q(status=OutboxStatus.FAILED)),
        oldest=Min("created_at", filter=Q(status=OutboxStatus.PENDING)),
    )
    oldest = totals["oldest"]
    yield gauge("mana_auth_outbox_pending", "Mail messages waiting to be delivered (the outbox backlog).",
                totals["pending"])
    yield gauge("mana_auth_outbox_oldest_pending_seconds", "Age of the oldest undelivered message (0: none).",
                max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
    yield gauge("mana_auth_outbox_failed", "Messages given up after every retry (kept for the operator).",
                totals["failed"])

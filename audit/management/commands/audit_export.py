import json
import sys
from datetime import datetime, UTC

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_date, parse_datetime

from audit.models import AuditEvent


def _since(value: str):
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(f"--since: not an ISO 8601 date or date-time: {value!r}")
        moment = datetime(day.year, day.month, day.day)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


class Command(BaseCommand):
    help = "Write audit rows as JSON lines (oldest first), with their hash-chain fields."

    def add_arguments(self, parser):
        parser.add_argument("--since", required=True, help="ISO 8601 date or date-time (UTC if no offset)")
        parser.add_argument("--output", help="file to write (default: standard output)")

    def handle(self, *args, since, output=None, **options):
        rows = AuditEvent.objects.filter(created_at__gte=_since(since)).order_by("id")
        out = open(output, "w", encoding="utf-8") if output else sys.stdout
        count = 0
        try:
            for row in rows.iterator(chunk_size=2000):
                out.write(json.dumps({
                    "id": row.pk, "createdAt": row.created_at.isoformat(), "event": row.event,
                    "actorId": str(row.actor_id) if row.actor_id else None,
                    "subjectId": str(row.subject_id) if row.subject_id else None,
                    "sessionId": str(row.session_id) if row.session_id else None,
                    "ipAddress": row.ip_address, "userAgent": row.user_agent, "success": row.success,
                    "context": row.context, "prevHash": row.prev_hash, "rowHash": row.row_hash,
                }, sort_keys=True) + "\n")
                count += 1
        finally:
            if output:
                out.close()
        self.stderr.write(f"exported {count} audit rows")

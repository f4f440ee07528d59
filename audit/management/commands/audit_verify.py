from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from audit.chain import chain_verify
from audit.services import audit_seal


class Command(BaseCommand):
    help = ("Verify the audit trail's hash chain (every seal and every sealed row); exits 1 and names the first "
            "mismatch. Reports how far the seal reaches and what is not sealed yet.")

    def add_arguments(self, parser):
        parser.add_argument("--seal", action="store_true", help="seal what is final first (as the sealer would)")

    def handle(self, *args, seal=False, **options):
        if seal:
            audit_seal()
        result = chain_verify()
        if not result.ok:
            where = (f"row id {result.broken_id}" if result.broken_id is not None else
                     f"seal {result.broken_seal} (rows {result.broken_range[0] + 1}..{result.broken_range[1]})")
            raise CommandError(f"audit chain BROKEN at {where} after {result.checked} good rows: {result.reason}")
        pending = "nothing waits to be sealed"
        if result.unsealed:
            age = (timezone.now() - result.unsealed_since).total_seconds()
            pending = f"{result.unsealed} rows not sealed yet, the oldest written {age:.1f}s ago"
        self.stdout.write(f"audit chain OK: {result.checked} rows in {result.seals} seals, sealed up to row id "
                          f"{result.sealed_to}, head {result.head or '(empty)'}; {pending}")

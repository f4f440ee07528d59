from django.core.management.base import BaseCommand, CommandError

from audit.chain import chain_verify


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain; exits 1 and names the first broken link."

    def handle(self, *args, **options):
        result = chain_verify()
        if not result.ok:
            raise CommandError(f"audit chain BROKEN at row id {result.broken_id} after {result.checked} good rows: "
                               f"{result.reason}")
        self.stdout.write(f"audit chain OK: {result.checked} rows, head {result.head or '(empty)'}")

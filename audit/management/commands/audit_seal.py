import logging
import time

from django.core.management.base import BaseCommand
from django.db import DatabaseError, connections

from audit.services import audit_seal

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = ("Seal the audit rows written since the last seal into the hash chain (docs/audit.md). With --loop: "
            "the sealer process, once per --interval; several may run, one seals at a time.")

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="keep sealing until stopped")
        parser.add_argument("--interval", type=float, default=1.0, help="seconds between rounds (default 1)")

    def handle(self, *args, loop=False, interval=1.0, **options):
        while True:
            total = 0
            try:
                while True:  # drain a backlog in rounds of max_rows
                    result = audit_seal()
                    total += result.rows
                    if result.busy or result.rows == 0 or result.waiting:
                        break
            except DatabaseError:
                if not loop:
                    raise
                logger.warning("audit sealer: the database failed; trying again", exc_info=True)
                connections.close_all()
                time.sleep(interval)
                continue
            if not loop:
                note = " (another sealer is at work)" if result.busy else \
                    " (a transaction still running may hold an earlier row)" if result.waiting else ""
                self.stdout.write(f"sealed {total} audit rows; the chain reaches row id {result.last_id}{note}")
                return
            time.sleep(interval)

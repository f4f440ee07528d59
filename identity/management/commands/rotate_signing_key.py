import json

from django.core.management.base import BaseCommand, CommandError

from identity.services.keys import SigningKeyNotFound, signing_key_revoke, signing_key_rotate


class Command(BaseCommand):
    help = ("Make a new Ed25519 key the signing key now, in every server process within a second. Older keys "
            "keep verifying until their tokens expire, except keys named with --revoke: a compromised key "
            "leaves the JWKS and every token it signed stops working at once.")

    def add_arguments(self, parser):
        parser.add_argument("--revoke", action="append", default=[], metavar="KID",
                            help="revoke this key (repeatable); a new key signs from now on")
        parser.add_argument("--reason", default="", help="recorded in the audit trail with --revoke")

    def handle(self, *args, **options):
        if options["revoke"]:
            reason = options["reason"].strip()[:200] or "manage.py rotate_signing_key --revoke"
            try:
                result = signing_key_revoke(kids=options["revoke"], reason=reason)
            except SigningKeyNotFound as exc:
                raise CommandError(f"{exc}; nothing was changed") from None
            key = result.signer
            self.stdout.write(json.dumps({"kid": key.kid, "activatesAt": key.activates_at.isoformat(),
                                          "revoked": result.revoked, "alreadyRevoked": result.already_revoked}))
            return
        key = signing_key_rotate(reason="manage.py rotate_signing_key")
        self.stdout.write(json.dumps({"kid": key.kid, "activatesAt": key.activates_at.isoformat()}))

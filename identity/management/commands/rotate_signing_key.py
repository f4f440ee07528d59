import json

from django.core.management.base import BaseCommand

from identity.services.keys import signing_key_rotate


class Command(BaseCommand):
    help = "Make a new Ed25519 key the signing key now. Older keys keep verifying until their tokens expire."

    def handle(self, *args, **options):
        key = signing_key_rotate(reason="manage.py rotate_signing_key")
        self.stdout.write(json.dumps({"kid": key.kid, "activatesAt": key.activates_at.isoformat()}))

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from service_accounts.services import service_account_create


class Command(BaseCommand):
    help = ('Create a service account (role "service") and print one JSON line {"clientId", "clientSecret"}. '
            "The secret is shown only now; only its hash is stored.")

    def add_arguments(self, parser):
        parser.add_argument("name", help="What the account is for, e.g. 'billing-service'.")

    def handle(self, *args, name, **options):
        try:
            created = service_account_create(name=name, via="manage.py create_service_account")
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(json.dumps({"clientId": created.client.client_id, "clientSecret": created.client_secret}))

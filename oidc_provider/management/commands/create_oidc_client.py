import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from oidc_provider.models import IdTokenAlg
from oidc_provider.services.clients import DEFAULT_SCOPES, oidc_client_create


class Command(BaseCommand):
    help = ('Register an OpenID Connect client and print one JSON line {"clientId", "clientSecret"} (no secret '
            "for a public client). The secret is shown only now; only its hash is stored.")

    def add_arguments(self, parser):
        parser.add_argument("name", help="What the app is called; users see it on the consent page.")
        parser.add_argument("--redirect-uri", action="append", default=[], dest="redirect_uris", metavar="URI",
                            help="an exact redirect URI (repeatable; at least one)")
        parser.add_argument("--post-logout-redirect-uri", action="append", default=[], dest="post_logout",
                            metavar="URI", help="an exact post-logout redirect URI (repeatable)")
        parser.add_argument("--public", action="store_true", help="no secret (single-page or mobile app); PKCE")
        parser.add_argument("--first-party", action="store_true", help="our own app: no consent page")
        parser.add_argument("--scope", action="append", default=[], dest="scopes", metavar="SCOPE",
                            help=f"an allowed scope (repeatable; default: {' '.join(DEFAULT_SCOPES)})")
        parser.add_argument("--id-token-alg", default=IdTokenAlg.RS256, choices=IdTokenAlg.values)

    def handle(self, *args, name, redirect_uris, post_logout, public, first_party, scopes, id_token_alg, **options):
        try:
            created = oidc_client_create(name=name, redirect_uris=redirect_uris, post_logout_redirect_uris=post_logout,
                                         public=public, first_party=first_party, scopes=scopes or None,
                                         id_token_alg=id_token_alg, via="manage.py create_oidc_client")
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        out = {"clientId": created.client.client_id}
        if created.client_secret:
            out["clientSecret"] = created.client_secret
        self.stdout.write(json.dumps(out))

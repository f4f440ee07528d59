"""DRF authentication for service accounts: a bearer access token without ``sid`` (client credentials)."""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import PermissionDenied

from core.errors import InvalidToken
from identity.bearer import CHALLENGE, bearer_claims
from service_accounts.models import ServiceClient
from service_accounts.selectors import service_client_for_claims


@dataclass(frozen=True)
class ServiceAccess:
    """``request.auth`` for a service token: the verified claims and the usable client behind them."""

    claims: dict
    service_client: ServiceClient
    session: None = None  # no device session behind a service token (request_session answers None)


class ServiceTokenNotAccepted(PermissionDenied):
    default_detail = "This endpoint does not accept service tokens."


class ServiceTokenAuthentication(BaseAuthentication):
    """Service tokens are accepted only by views that say so (``accepts_service_tokens = True``): every other
    view assumes a user with a device session. The client must still be usable. Tokens with ``sid`` are left
    to sessions_app.authentication."""

    def authenticate(self, request):
        claims = bearer_claims(request)
        if claims is None or "sid" in claims:
            return None
        client = service_client_for_claims(claims)
        if client is None:
            raise InvalidToken("The service account of this token is disabled or its secret was rotated.",
                               headers=CHALLENGE)
        view = (getattr(request, "parser_context", None) or {}).get("view")
        if not getattr(view, "accepts_service_tokens", False):
            raise ServiceTokenNotAccepted()
        return client.user, ServiceAccess(claims=claims, service_client=client)

    def authenticate_header(self, request):
        return 'Bearer realm="api"'

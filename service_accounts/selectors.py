"""Reads: which service client a service token speaks for."""

from __future__ import annotations

import uuid

from service_accounts.models import ServiceClient


def service_client_for_claims(claims: dict) -> ServiceClient | None:
    """The usable client a verified service token (no ``sid``) belongs to, or None when the client was
    deactivated, its account disabled, or its secret rotated since the token was issued. One query."""
    client = (ServiceClient.objects.usable().select_related("user")
              .filter(user_id=_uuid_or_none(claims.get("sub")), client_id=claims.get("clientId")).first())
    if client is None or client.secret_version != claims.get("secretVersion"):
        return None
    return client


def _uuid_or_none(value):
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None

"""OpenID Connect clients: register, rotate the secret, change. A secret is 256 random bits shown once
and stored as its SHA-256 (the reasoning of service_accounts.services: never chosen by a person, so a slow
hash protects nothing more and costs every token request)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.models import EventType
from audit.services import audit_record
from core.tokens import hash_token
from oidc_provider.app_settings import app_settings
from oidc_provider.models import IdTokenAlg, OidcClient

CLIENT_ID_PREFIX = "oidc_"
SECRET_PREFIX = "mcos_"
NAME_MAX_LENGTH = 150
URI_MAX_LENGTH = 2000
DEFAULT_SCOPES = ("openid", "profile", "email", "offline_access")


@dataclass(frozen=True)
class CreatedClient:
    client: OidcClient
    client_secret: str  # "" for a public client; shown once, never stored


def _new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def clean_name(name) -> str:
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name:
        raise ValidationError("A client needs a name.", code="required")
    if len(name) > NAME_MAX_LENGTH or "\x00" in name:
        raise ValidationError(f"The name must be at most {NAME_MAX_LENGTH} characters.", code="invalid")
    return name


def clean_redirect_uris(uris, *, what: str = "redirect URI", required: bool = True) -> list[str]:
    """Absolute URIs without a fragment, kept exactly as given (they are matched exactly). http only for
    loopback hosts; a custom scheme (``com.example.app:/callback``, native apps, RFC 8252) is accepted."""
    cleaned = []
    for uri in uris or []:
        uri = uri.strip() if isinstance(uri, str) else ""
        if not uri:
            continue
        parts = urlsplit(uri)
        if len(uri) > URI_MAX_LENGTH or any(c.isspace() for c in uri) or not parts.scheme or parts.fragment \
                or "#" in uri:
            raise ValidationError(f"Not a usable {what}: {uri[:100]}", code="invalid")
        if parts.scheme in ("javascript", "data", "vbscript", "file"):
            raise ValidationError(f"Not a usable {what}: {uri[:100]}", code="invalid")
        if parts.scheme in ("http", "https") and not parts.hostname:
            raise ValidationError(f"A {what} needs a host: {uri[:100]}", code="invalid")
        if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1") \
                and not app_settings._get("ALLOW_HTTP_REDIRECTS", False):
            raise ValidationError(f"A {what} must use https (http only for localhost): {uri[:100]}", code="invalid")
        cleaned.append(uri)
    cleaned = list(dict.fromkeys(cleaned))
    if required and not cleaned:
        raise ValidationError(f"At least one {what} is required.", code="required")
    return cleaned


def clean_scopes(scopes) -> list[str]:
    scopes = [s for s in (scopes or DEFAULT_SCOPES) if isinstance(s, str)]
    unknown = [s for s in scopes if s not in app_settings.SCOPES]
    if unknown:
        raise ValidationError(f"Unknown scopes: {', '.join(unknown)}", code="invalid")
    if "openid" not in scopes:
        raise ValidationError("The openid scope is required.", code="invalid")
    return list(dict.fromkeys(scopes))


@transaction.atomic
def oidc_client_create(*, name: str, redirect_uris, post_logout_redirect_uris=(), public: bool = False,
                       first_party: bool = False, scopes=None, id_token_alg: str = IdTokenAlg.RS256,
                       actor=None, request=None, via: str = "") -> CreatedClient:
    name = clean_name(name)
    redirect_uris = clean_redirect_uris(redirect_uris)
    post_logout = clean_redirect_uris(post_logout_redirect_uris, what="post-logout redirect URI", required=False)
    if id_token_alg not in IdTokenAlg.values:
        raise ValidationError("id_token algorithm must be RS256 or EdDSA.", code="invalid")
    secret = "" if public else _new_secret()
    client = OidcClient.objects.create(
        client_id=CLIENT_ID_PREFIX + secrets.token_hex(12), name=name,
        secret_hash=hash_token(secret) if secret else "", is_public=public, is_first_party=first_party,
        redirect_uris=redirect_uris, post_logout_redirect_uris=post_logout, allowed_scopes=clean_scopes(scopes),
        id_token_alg=id_token_alg,
    )
    audit_record(event=EventType.OIDC_CLIENT_CREATED, request=request, actor=actor, client_id=client.client_id,
                 name=name, public=public, first_party=first_party, via=via)
    return CreatedClient(client=client, client_secret=secret)


@transaction.atomic
def oidc_client_rotate_secret(*, client: OidcClient, actor=None, request=None, via: str = "") -> str:
    """A new secret (returned once) for a confidential client; the old one stops working at once."""
    client = OidcClient.objects.select_for_update().get(pk=client.pk)
    if client.is_public:
        raise ValidationError("A public client has no secret.", code="invalid")
    secret = _new_secret()
    client.secret_hash, client.rotated_at = hash_token(secret), timezone.now()
    client.save(update_fields=["secret_hash", "rotated_at"])
    audit_record(event=EventType.OIDC_CLIENT_SECRET_ROTATED, request=request, actor=actor,
                 client_id=client.client_id, via=via)
    return secret


@transaction.atomic
def oidc_client_update(*, client: OidcClient, actor=None, request=None, **changes) -> OidcClient:
    """Change what staff may change in the admin (validated like at creation); audited."""
    if "name" in changes:
        changes["name"] = clean_name(changes["name"])
    if "redirect_uris" in changes:
        changes["redirect_uris"] = clean_redirect_uris(changes["redirect_uris"])
    if "post_logout_redirect_uris" in changes:
        changes["post_logout_redirect_uris"] = clean_redirect_uris(
            changes["post_logout_redirect_uris"], what="post-logout redirect URI", required=False)
    if "allowed_scopes" in changes:
        changes["allowed_scopes"] = clean_scopes(changes["allowed_scopes"])
    for name, value in changes.items():
        setattr(client, name, value)
    client.save(update_fields=list(changes))
    audit_record(event=EventType.OIDC_CLIENT_UPDATED, request=request, actor=actor, client_id=client.client_id,
                 changed=sorted(changes))
    return client

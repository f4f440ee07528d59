"""Service-account flows: create, rotate the secret, (de)activate, exchange client credentials for a
service token, and introspect any access token (RFC 7662 style).

Why SHA-256 and not argon2 for the secret: the secret is 256 bits from ``secrets`` (never chosen by a
person), so guessing it from its hash is as hopeless with one fast hash as with a slow one; argon2's
cost exists for low-entropy passwords. A slow hash would instead make every token request cost
~100 ms and 100 MiB of the provider's CPU and memory (a free denial-of-service lever on a public
endpoint) while protecting nothing more. The same reasoning already applies to link and refresh
tokens (``core.tokens.hash_token``). Comparison is constant-time, and an unknown client id costs
the same hash and comparison as a wrong secret.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import Role, User
from audit.models import EventType
from audit.refusals import audit_refusal
from audit.services import audit_record
from core.errors import ApiError
from core.tokens import hash_token
from identity.services.tokens import IssuedToken, TokenError, access_token_verify, service_access_token_issue
from service_accounts.models import ServiceClient
from service_accounts.selectors import service_client_for_claims
from sessions_app.policy import session_refusal
from sessions_app.selectors import session_for_claims

CLIENT_ID_PREFIX = "svc_"
SECRET_PREFIX = "mcs_"
SERVICE_EMAIL_DOMAIN = "service.invalid"  # RFC 2606: never a real mailbox
NAME_MAX_LENGTH = 150
# Compared against when the client id is unknown, so that answer costs what a wrong secret costs.
_DUMMY_HASH = hash_token(SECRET_PREFIX + "no-such-client")


class InvalidClient(ApiError):
    status_code = 401
    default_code = "invalid_client"
    default_detail = "The client id or secret is incorrect, or the service account is disabled."


@dataclass(frozen=True)
class CreatedServiceAccount:
    client: ServiceClient
    client_secret: str  # shown once, never stored


def _new_client_id() -> str:
    return CLIENT_ID_PREFIX + secrets.token_hex(12)


def _new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)  # 256 random bits


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError("A service account needs a name.", code="required")
    if len(name) > NAME_MAX_LENGTH or "\x00" in name:
        raise ValidationError(f"The name must be at most {NAME_MAX_LENGTH} characters.", code="invalid")
    return name


@transaction.atomic
def service_account_create(*, name: str, actor=None, request=None, via: str = "") -> CreatedServiceAccount:
    """A new account with role ``service`` and no usable password, and its client credentials."""
    name = _clean_name(name)
    client_id = _new_client_id()
    user = User.objects.create_user(f"{client_id}@{SERVICE_EMAIL_DOMAIN}", None, name=name, role=Role.SERVICE)
    secret = _new_secret()
    client = ServiceClient.objects.create(user=user, name=name, client_id=client_id, secret_hash=hash_token(secret))
    audit_record(event=EventType.SERVICE_ACCOUNT_CREATED, request=request, actor=actor, subject=user,
                 client_id=client_id, name=name, via=via)
    return CreatedServiceAccount(client=client, client_secret=secret)


@transaction.atomic
def service_account_rotate_secret(*, client: ServiceClient, actor=None, request=None, via: str = "") -> str:
    """A new secret (returned once); the old one stops working at once, and so do the tokens issued
    with it (their ``secretVersion`` no longer matches)."""
    client = ServiceClient.objects.select_for_update().get(pk=client.pk)
    secret = _new_secret()
    client.secret_hash = hash_token(secret)
    client.secret_version += 1
    client.rotated_at = timezone.now()
    client.save(update_fields=["secret_hash", "secret_version", "rotated_at"])
    audit_record(event=EventType.SERVICE_ACCOUNT_SECRET_ROTATED, request=request, actor=actor,
                 subject=client.user, client_id=client.client_id, version=client.secret_version, via=via)
    return secret


@transaction.atomic
def service_account_set_active(*, client: ServiceClient, is_active: bool, actor=None, request=None) -> ServiceClient:
    """Deactivating refuses new tokens and, from the next request on, every token already issued."""
    client = ServiceClient.objects.select_for_update().get(pk=client.pk)
    if client.is_active != is_active:
        client.is_active = is_active
        client.save(update_fields=["is_active"])
        audit_record(event=EventType.SERVICE_ACCOUNT_UPDATED, request=request, actor=actor, subject=client.user,
                     client_id=client.client_id, is_active=is_active)
    return client


def service_token_obtain(*, client_id: str, client_secret: str, request=None) -> IssuedToken:
    """Client credentials -> a service access token. Unknown id, wrong secret and a disabled client
    all answer ``invalid_client`` after the same work (one query, one hash, one comparison)."""
    client = ServiceClient.objects.select_related("user").filter(client_id=client_id).first()
    presented = hash_token(client_secret)
    matches = hmac.compare_digest(presented, client.secret_hash if client else _DUMMY_HASH)
    usable = client is not None and client.is_active and client.user.is_active and client.user.role == Role.SERVICE
    if not (matches and usable):
        reason = "unknown_client" if client is None else ("bad_secret" if not matches else "inactive")
        raise audit_refusal(InvalidClient(), event=EventType.SERVICE_TOKEN_FAILED, reason=reason, request=request,
                            subject=client.user if client else None, client_id=client_id[:64])
    with transaction.atomic():
        now = timezone.now()
        ServiceClient.objects.filter(pk=client.pk).update(last_used_at=now)
        issued = service_access_token_issue(user=client.user, client_id=client.client_id,
                                            secret_version=client.secret_version)
        audit_record(event=EventType.SERVICE_TOKEN_ISSUED, request=request, actor=client.user,
                     client_id=client.client_id, jti=issued.claims["jti"])
    return issued


def token_introspect(*, token: str) -> dict:
    """RFC 7662: ``{"active": true, ...claims}`` for a token that our provider would accept right now
    (signature, expiry, and its session alive, or for a service token its client usable and not
    rotated since); ``{"active": false}`` for anything else, without saying why."""
    try:
        claims = access_token_verify(token)
    except TokenError:
        return {"active": False}
    if "sid" in claims:  # the one rule, read only: the session's owner applies a refusal on its next use
        live = session_refusal(session_for_claims(claims), timezone.now()) is None
    else:
        live = service_client_for_claims(claims) is not None
    return {"active": True, **claims} if live else {"active": False}

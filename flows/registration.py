"""Registration and verification across apps: a business sign-up stores the organization to create
(orgs), and verifying the address creates it."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from accounts.models import TokenPurpose, User
from accounts.services import (
    PasswordRequired,
    account_token_consume,
    account_token_find,
    password_validate,
    user_register,
    user_security_state_save,
)
from audit.models import EventType
from audit.refusals import audited_refusals
from audit.services import audit_record
from orgs.selectors import pending_organization_names
from orgs.services import pending_organization_store, pending_organizations_create


@transaction.atomic
def user_register_b2b(*, email: str, password: str, name: str, organization_name: str, request=None) -> User | None:
    """``register`` for a business: the same answer and mail, and the organization to create with the
    user as owner once the email address is verified. Nothing is stored for a taken email."""
    user = user_register(email=email, password=password, name=name, request=request)
    if user is not None:
        pending_organization_store(user=user, name=organization_name)
    return user


def email_verify(*, token: str, password: str | None = None, request=None) -> User:
    """Confirm the address from the mailed link. An account that has never signed in gets its password
    here, from whoever opened the link (the holder of the address): ``password`` is required then
    (400 ``password_required``) and replaces the one given at registration, so a password chosen by
    someone who registered another person's address does not survive the verification. It is ignored
    for an account that has signed in before. Checked before the token is spent: a refusal keeps the
    link working. Creates the organizations of a ``register-b2b`` sign-up."""
    with audited_refusals(event=EventType.EMAIL_VERIFICATION_FAILED, request=request) as scope:
        record = account_token_find(token, TokenPurpose.VERIFY_EMAIL)
        scope.subject = record.user if record is not None else None  # a refusal concerns the link's account
        # No row lock needed: of racing requests only the one whose conditional UPDATE spends the
        # token goes on to set the password.
        sets_password = record is not None and record.user.last_login is None
        # A dead link answers invalid_token / token_expired (below) before any password question.
        if sets_password and record.used_at is None and record.expires_at > timezone.now():
            if not password:
                raise PasswordRequired(fields={"password": ["Choose a password for this account."]})
            password_validate(password, record.user, "password")
        user = account_token_consume(token, TokenPurpose.VERIFY_EMAIL).user
        fields = ["updated_at"]
        if user.email_verified_at is None:
            user.email_verified_at = timezone.now()
            fields.append("email_verified_at")
        if sets_password:
            user.set_password(password)
            fields.append("password")
        if sets_password:  # a security-state change: links the registrant may hold end with it
            user_security_state_save(user=user, update_fields=fields)
        elif len(fields) > 1:
            user.save(update_fields=fields)
        audit_record(event=EventType.EMAIL_VERIFIED, request=request, actor=user, credentials_set=sets_password)
        pending_organizations_create(user=user, request=request)  # register-b2b
        return user


# --- what the verification page shows before it acts (a GET must not use the token) ---------------
@dataclass(frozen=True)
class VerificationPreview:
    """What confirming an address will do: ``needs_password`` (the account never signed in, so the
    person confirming chooses its password: flows.registration.email_verify) and the organizations a
    ``register-b2b`` sign-up asked for, created with them as owner."""

    needs_password: bool
    organizations: tuple[str, ...]


def email_verification_preview(*, token: str) -> VerificationPreview | None:
    """Read only: a page's GET must not use the token (mail scanners fetch links). None when the link
    would not work (unknown, used or expired); the POST then says so."""
    record = account_token_find(token, TokenPurpose.VERIFY_EMAIL, usable=True)
    if record is None:
        return None
    return VerificationPreview(needs_password=record.user.last_login is None,
                               organizations=pending_organization_names(record.user))

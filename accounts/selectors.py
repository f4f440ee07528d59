"""Reads of the accounts app (the pages ask them before a service acts)."""

from __future__ import annotations

from dataclasses import dataclass

from accounts.models import AccountToken, TokenPurpose


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
    from orgs.models import PendingOrganization

    record = (AccountToken.objects.usable().by_value(token or "").filter(purpose=TokenPurpose.VERIFY_EMAIL)
              .select_related("user").first())
    if record is None:
        return None
    names = PendingOrganization.objects.filter(user=record.user).order_by("created_at", "pk").values_list("name",
                                                                                                          flat=True)
    return VerificationPreview(needs_password=record.user.last_login is None, organizations=tuple(names))

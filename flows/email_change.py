"""Changing the account's email address, and undoing a change (docs/security.md): the account and its
link tokens (accounts), the "this wasn't me" link (security), the sessions the change ends
(sessions_app)."""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.app_settings import app_settings
from accounts.models import SECURITY_STATE_EXEMPT_PURPOSES, AccountToken, TokenPurpose, User
from accounts.services import (
    EmailTaken,
    InvalidCurrentPassword,
    InvalidLinkToken,
    account_token_consume,
    account_token_find,
    account_token_issue,
    account_token_spend,
    account_tokens_end,
    email_change_cancel_pending,
    email_change_first_revert_after,
    email_change_revert_link,
    new_email_validate,
    password_reset_link_send,
    user_security_state_save,
)
from audit.models import EventType
from audit.refusals import RefusalScope, audit_refusal, audited_refusals
from audit.services import audit_record, email_mask
from core.email import normalize_email
from core.links import public_url
from notifications.services import outbox_enqueue
from security.app_settings import app_settings as security_settings
from security.models import SecurityTokenPurpose
from security.services import security_token_issue, security_tokens_end
from sessions_app.models import DeviceSession, RevokeReason
from sessions_app.selectors import session_of_user
from sessions_app.services import sessions_revoke_all


def email_change_request(*, user: User, session: DeviceSession | None, new_email: str, password: str,
                         request=None) -> None:
    """Ask to move the account to ``new_email`` (the caller checked step-up). ``password`` must be the
    account's (400 invalid_password, audited, nothing sent): a fresh session alone is not enough, since
    the address is the recovery channel. The new address gets a single-use confirmation link (only its
    hash is stored), or, if it already belongs to an account, a notice instead; the old address is told
    either way, with a "this wasn't me" link. The caller answers the same in both cases, and the
    requester's audit row looks the same too (no enumeration). A new request replaces every earlier
    pending one."""
    if not user.check_password(password or ""):
        raise audit_refusal(InvalidCurrentPassword("The password is incorrect.",
                                                   fields={"password": ["The password is incorrect."]}),
                            event=EventType.EMAIL_CHANGE_FAILED, reason="invalid_password", request=request,
                            actor=user, session=session)
    new_email = normalize_email(new_email)
    new_email_validate(new_email, user)
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()  # row locks before the audit chain lock
        owner = User.objects.filter(email=new_email).first()
        if owner is None:
            raw = account_token_issue(user, TokenPurpose.CHANGE_EMAIL, app_settings.EMAIL_CHANGE_TTL,
                                      new_email=new_email, requested_session_id=getattr(session, "pk", None))
            outbox_enqueue(kind="email_change_confirm", recipient=new_email, subject="Confirm your new email address",
                           template="email_change_confirm",
                           context={"user": user, "new_email": new_email,
                                    "link": public_url("web-account-email-confirm", token=raw),
                                    "hours": int(app_settings.EMAIL_CHANGE_TTL.total_seconds() // 3600)})
        else:
            # What issuing a link does to earlier requests, so both cases leave the same state behind.
            email_change_cancel_pending(user=user)
            outbox_enqueue(kind="email_change_taken", recipient=owner.email, subject="Your email address was entered",
                           template="email_change_taken",
                           context={"user": owner, "login_link": public_url("web-login"),
                                    "reset_link": public_url("web-forgot-password")})
        # ``email``: the address the link goes to. Opened after the change took effect, it undoes the
        # change instead of mailing a reset to the new address (email_change_revert_for_not_me).
        not_me = security_token_issue(user=user, purpose=SecurityTokenPurpose.NOT_ME,
                                      ttl=security_settings.NOT_ME_TTL, session_id=str(getattr(session, "pk", "")),
                                      email=user.email)
        outbox_enqueue(kind="email_change_requested", recipient=user.email,
                       subject="Your email address is being changed", template="email_change_requested",
                       context={"user": user, "masked_new_email": email_mask(new_email), "time": timezone.now(),
                                "hours": int(app_settings.EMAIL_CHANGE_TTL.total_seconds() // 3600),
                                "not_me_link": public_url("web-account-not-me", token=not_me),
                                "sessions_link": public_url("web-account-sessions")})
        # address_in_use is not among the details users see (security.serializers.VISIBLE_CONTEXT).
        audit_record(event=EventType.EMAIL_CHANGE_REQUESTED, request=request, actor=user, session=session,
                     new_email=email_mask(new_email), address_in_use=owner is not None)


def _spend_with_owner_locked(token: str, purpose: str, scope: RefusalScope) -> tuple[User, AccountToken]:
    """Spend an email-change link of ``purpose`` with its active owner's row locked first (the user row
    before the token row, the order of email_change_request; the audit chain after both). A refusal
    concerns the account the link was issued to (``scope.subject``)."""
    pending = account_token_find(token, purpose)
    scope.subject = pending.user if pending is not None else None
    user = (User.objects.select_for_update().filter(pk=pending.user_id, is_active=True).first()
            if pending else None)
    record = account_token_consume(token, purpose)
    if user is None or record.user_id != user.pk:
        raise InvalidLinkToken()
    return user, record


def email_change_confirm(*, token: str, request=None) -> User:
    """Apply a confirmed change (the link mailed to the new address): the address must still be free
    (checked, and guarded by the unique constraint: 409 email_taken), it counts as verified now, every
    other link token of the account stops working (except the ways back of earlier changes), every
    session except the one that asked ends. The old address is told, with a single-use link that undoes
    the change (email_change_revert). Audited with both addresses masked. Atomic: a refusal changes
    nothing."""
    with audited_refusals(event=EventType.EMAIL_CHANGE_FAILED, request=request) as scope:
        user, record = _spend_with_owner_locked(token, TokenPurpose.CHANGE_EMAIL, scope)
        old, new, now = user.email, record.new_email, timezone.now()
        if User.objects.filter(email=new).exclude(pk=user.pk).exists():
            raise EmailTaken()
        user.email, user.email_verified_at = new, now
        try:
            with transaction.atomic():
                user.save(update_fields=["email", "email_verified_at", "updated_at"])
        except IntegrityError:  # taken by a concurrent registration or change (case-insensitive constraint)
            raise EmailTaken() from None
        # Links mailed to the old address (reset, verification) and other pending changes stop working;
        # not the exempt ones (an earlier change's undo link must outlive the next change, whoever holds
        # the new address must not end it).
        account_tokens_end(user=user, now=now, keep_purposes=SECURITY_STATE_EXEMPT_PURPOSES)
        revert = account_token_issue(user, TokenPurpose.EMAIL_CHANGE_REVERT, app_settings.EMAIL_CHANGE_REVERT_TTL,
                                     replace=False, new_email=old)
        keep = None
        if record.requested_session_id:
            keep = session_of_user(user, record.requested_session_id)
        revoked = sessions_revoke_all(user=user, reason=RevokeReason.EMAIL_CHANGED, request=request, actor=user,
                                      keep=keep)
        audit_record(event=EventType.EMAIL_CHANGED, request=request, actor=user, session=keep,
                     old_email=email_mask(old), new_email=email_mask(new), sessions_revoked=revoked)
        outbox_enqueue(kind="email_changed", recipient=old, subject="Your email address was changed",
                       template="email_changed",
                       context={"user": user, "masked_new_email": email_mask(new), "time": now,
                                "revert_link": public_url("web-account-email-revert", token=revert),
                                "days": app_settings.EMAIL_CHANGE_REVERT_TTL.days})
        return user


class AddressNotRestorable(EmailTaken):
    default_detail = ("This address belongs to another account now, so it cannot be given back. Nothing was "
                      "changed; contact support.")


def email_change_revert(*, token: str, request=None) -> User:
    """The link mailed to the old address when a change was applied: give that address back. In one
    transaction the account gets the old address again (verified: the link proves it), its password
    becomes unusable (whoever made the change knows it), every session ends, every pending link ends
    (resets, verification, pending email changes, unlock and "this wasn't me" links, the ways back of
    later changes), and a reset link goes to the restored address. 409 email_taken when the address
    belongs to another account now (nothing changes, the link stays unspent). Audited either way."""
    with audited_refusals(event=EventType.EMAIL_CHANGE_REVERT_FAILED, request=request) as scope:
        user, record = _spend_with_owner_locked(token, TokenPurpose.EMAIL_CHANGE_REVERT, scope)
        _email_change_undo(user=user, record=record, request=request, via="revert_link")
        return user


def email_change_revert_for_not_me(*, user: User, mailed_to: str, link_issued_at: datetime,
                                   request=None) -> str | None:
    """A "this wasn't me" link proves the address it was mailed to (``mailed_to``; for links issued
    before it was recorded: the address the account had at ``link_issued_at``). If the account moved
    away from that address since, a reset must not go to the new one: the change is undone with that
    address's revert link, as email_change_revert does (call inside the report's transaction, before
    it locks anything else). Returns None when the address did not change (the caller mails the reset
    to it), ``"restored"``, or ``"unavailable"`` (no live revert link for it, or it belongs to another
    account now: then no reset link is sent anywhere)."""
    address = normalize_email(mailed_to) or _address_at(user, link_issued_at)
    if address == user.email:
        return None
    record = email_change_revert_link(user=user, address=address)
    if record is None:
        return "unavailable"
    try:
        with transaction.atomic():
            User.objects.select_for_update().filter(pk=user.pk).first()
            if not account_token_spend(record):
                return "unavailable"  # spent by a concurrent request
            _email_change_undo(user=user, record=record, request=request, via="not_me")
    except EmailTaken:
        user.refresh_from_db()
        return "unavailable"
    return "restored"


def _address_at(user: User, moment: datetime) -> str:
    """The address the account had at ``moment``: the one the first change after it replaced (each applied
    change leaves a revert link naming the address it replaced), else the current one."""
    first_change = email_change_first_revert_after(user=user, moment=moment)
    return first_change.new_email if first_change is not None else user.email


def _email_change_undo(*, user: User, record: AccountToken, request, via: str) -> None:
    """The work of a revert (the caller locked the user row and spent ``record``): row locks first,
    then the sessions (each revocation writes its audit row), then the audit rows and mail."""
    restored, replaced, now = record.new_email, user.email, timezone.now()
    if User.objects.filter(email=restored).exclude(pk=user.pk).exists():
        raise AddressNotRestorable()
    previous = (user.email, user.email_verified_at, user.password)
    user.email, user.email_verified_at = restored, now
    user.set_unusable_password()
    try:
        with transaction.atomic():
            # a security-state change: known devices and versioned links end (the revert links are exempt)
            user_security_state_save(user=user, update_fields=["email", "email_verified_at", "password", "updated_at"])
    except IntegrityError:  # taken by a concurrent registration or change (case-insensitive constraint)
        user.email, user.email_verified_at, user.password = previous
        raise AddressNotRestorable() from None
    # Every pending link ends, except the ways back of earlier changes (they restore addresses held
    # before this one); the revert links of later changes (to addresses given up now) end too.
    links = account_tokens_end(user=user, now=now, keep_reverts_before=record.created_at)
    links += security_tokens_end(user=user)
    password_reset_link_send(user)  # to the restored address
    revoked = sessions_revoke_all(user=user, reason=RevokeReason.EMAIL_CHANGE_REVERTED, request=request, actor=user)
    audit_record(event=EventType.EMAIL_CHANGE_REVERTED, request=request, actor=user, via=via,
                 restored_email=email_mask(restored), replaced_email=email_mask(replaced), sessions_revoked=revoked,
                 links_ended=links)
    audit_record(event=EventType.PASSWORD_RESET_REQUESTED, request=request, subject=user, via=via)
    if replaced != restored:
        outbox_enqueue(kind="email_change_reverted", recipient=replaced,
                       subject="This address was removed from an account", template="email_change_reverted",
                       context={"user": user, "masked_restored_email": email_mask(restored), "time": now})

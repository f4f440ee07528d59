"""The accounts services flows use for link tokens instead of touching AccountToken rows
(accounts.services.account_token_*, email_change_revert_link, email_change_first_revert_after)."""

from datetime import timedelta

from django.utils import timezone

from accounts.models import AccountToken, TokenPurpose
from accounts.services import (
    account_token_find,
    account_token_issue,
    account_token_spend,
    account_tokens_end,
    email_change_first_revert_after,
    email_change_revert_link,
)
from tests.factories import UserFactory

HOUR = timedelta(hours=1)


def _row(raw):
    return AccountToken.objects.by_value(raw).get()


def test_find_reads_any_state_and_usable_only_live_ones(db):
    user = UserFactory()
    raw = account_token_issue(user, TokenPurpose.RESET_PASSWORD, HOUR)
    assert account_token_find(raw, TokenPurpose.RESET_PASSWORD).user == user
    assert account_token_find(raw, TokenPurpose.VERIFY_EMAIL) is None  # another purpose
    assert account_token_find("", TokenPurpose.RESET_PASSWORD) is None
    assert account_token_spend(_row(raw))
    assert account_token_find(raw, TokenPurpose.RESET_PASSWORD) is not None  # spent: still found
    assert account_token_find(raw, TokenPurpose.RESET_PASSWORD, usable=True) is None


def test_spend_is_conditional(db):
    user = UserFactory()
    row = _row(account_token_issue(user, TokenPurpose.EMAIL_CHANGE_REVERT, HOUR, replace=False, new_email="a@x.io"))
    assert account_token_spend(row) is True
    assert account_token_spend(row) is False  # a concurrent request spent it first


def test_end_keeps_the_named_purposes_and_earlier_reverts(db):
    user = UserFactory()
    now = timezone.now()
    early = account_token_issue(user, TokenPurpose.EMAIL_CHANGE_REVERT, HOUR, replace=False, new_email="old@x.io")
    AccountToken.objects.filter(pk=_row(early).pk).update(created_at=now - HOUR)
    late = account_token_issue(user, TokenPurpose.EMAIL_CHANGE_REVERT, HOUR, replace=False, new_email="mid@x.io")
    reset = account_token_issue(user, TokenPurpose.RESET_PASSWORD, HOUR)
    other = account_token_issue(UserFactory(), TokenPurpose.RESET_PASSWORD, HOUR)

    assert account_tokens_end(user=user, keep_purposes={TokenPurpose.EMAIL_CHANGE_REVERT}) == 1
    assert _row(reset).used_at is not None and _row(late).used_at is None and _row(other).used_at is None

    AccountToken.objects.filter(user=user).update(used_at=None)
    assert account_tokens_end(user=user, keep_reverts_before=now) == 2  # the late revert and the reset
    assert _row(early).used_at is None and _row(late).used_at is not None


def test_revert_link_selectors(db):
    user = UserFactory()
    before = timezone.now() - timedelta(minutes=1)
    first = account_token_issue(user, TokenPurpose.EMAIL_CHANGE_REVERT, HOUR, replace=False, new_email="a@x.io")
    second = account_token_issue(user, TokenPurpose.EMAIL_CHANGE_REVERT, HOUR, replace=False, new_email="a@x.io")
    assert email_change_revert_link(user=user, address="a@x.io") == _row(second)  # the newest live one
    assert email_change_revert_link(user=user, address="b@x.io") is None
    assert email_change_first_revert_after(user=user, moment=before) == _row(first)
    assert email_change_first_revert_after(user=user, moment=timezone.now()) is None

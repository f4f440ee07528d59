"""core.links: one-time link tokens on both link-token models (issue, single use, expiry, purpose,
supersede, the check hook, the PostgreSQL race) and public_url."""

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connections, transaction
from django.urls import NoReverseMatch
from django.utils import timezone

from accounts.models import AccountToken, TokenPurpose, User
from core.errors import ApiError, exception_handler
from core.links import (
    SECURITY_STATE_EXEMPT_PURPOSES,
    ExpiredLinkToken,
    InvalidLinkToken,
    SupersededLinkToken,
    link_security_version,
    link_token_consume,
    link_token_issue,
    public_url,
    same_security_state,
)
from core.tokens import hash_token
from security.models import SecurityToken, SecurityTokenPurpose
from tests.factories import UserFactory

TTL = timedelta(hours=1)
# (model, purpose, another purpose of the same model, the model's own fields a token may carry)
MODELS = [
    pytest.param(AccountToken, TokenPurpose.VERIFY_EMAIL, TokenPurpose.RESET_PASSWORD,
                 {"new_email": "next@example.com", "requested_session_id": uuid.uuid4()}, id="AccountToken"),
    pytest.param(SecurityToken, SecurityTokenPurpose.UNLOCK, SecurityTokenPurpose.NOT_ME,
                 {"context": {"network": "198.51.100.0/24"}}, id="SecurityToken"),
]
LINK_TOKEN_SHAPE = {"user", "purpose", "token_hash", "created_at", "expires_at", "used_at"}


def _unspent(model, raw):
    return model.objects.get(token_hash=hash_token(raw)).used_at is None


@pytest.mark.parametrize("model", [AccountToken, SecurityToken])
def test_both_models_have_the_link_token_shape(model):
    fields = {field.name: field for field in model._meta.get_fields()}
    assert LINK_TOKEN_SHAPE <= fields.keys()
    assert fields["user"].related_model is User
    assert fields["token_hash"].unique
    assert fields["used_at"].null and not fields["expires_at"].null


@pytest.mark.parametrize("model, purpose, other, fields", MODELS)
def test_issue_stores_only_the_hash_with_its_lifetime_and_fields(db, model, purpose, other, fields):
    user = UserFactory()
    now = timezone.now()
    raw = link_token_issue(model, user=user, purpose=purpose, ttl=TTL, now=now, **fields)
    row = model.objects.get()
    assert len(raw) >= 43 and row.token_hash == hash_token(raw) and raw != row.token_hash
    assert not model.objects.filter(token_hash=raw).exists()
    assert (row.user, row.purpose, row.created_at, row.expires_at, row.used_at) == (user, purpose, now, now + TTL,
                                                                                     None)
    for name, value in fields.items():
        assert getattr(row, name) == value
    assert link_token_issue(model, user=user, purpose=purpose, ttl=TTL) != raw


@pytest.mark.parametrize("model, purpose, other, fields", MODELS)
def test_consume_spends_once(db, model, purpose, other, fields):
    user = UserFactory()
    raw = link_token_issue(model, user=user, purpose=purpose, ttl=TTL, **fields)
    now = timezone.now() + timedelta(minutes=5)
    token = link_token_consume(model, raw=raw, purpose=purpose, now=now)
    assert token.user == user and token.used_at == now
    assert model.objects.get(pk=token.pk).used_at == now
    with pytest.raises(InvalidLinkToken) as refused:
        link_token_consume(model, raw=raw, purpose=purpose, now=now)
    assert (refused.value.code, refused.value.message) == ("invalid_token",
                                                           "This link is invalid or has already been used.")


@pytest.mark.parametrize("model, purpose, other, fields", MODELS)
def test_expired_token_is_refused_and_not_spent(db, model, purpose, other, fields):
    issued = timezone.now()
    raw = link_token_issue(model, user=UserFactory(), purpose=purpose, ttl=TTL, now=issued)
    with pytest.raises(ExpiredLinkToken) as refused:
        link_token_consume(model, raw=raw, purpose=purpose, now=issued + TTL)  # expires_at itself is too late
    assert (refused.value.code, refused.value.status_code) == ("token_expired", 400)
    assert refused.value.message == "This link has expired. Request a new one."
    with pytest.raises(ExpiredLinkToken, match=r"^This link has expired\.$"):  # security links say only this
        link_token_consume(model, raw=raw, purpose=purpose, now=issued + TTL, expired_message="This link has expired.")
    assert _unspent(model, raw)
    assert link_token_consume(model, raw=raw, purpose=purpose, now=issued + TTL - timedelta(seconds=1)).used_at


@pytest.mark.parametrize("model, purpose, other, fields", MODELS)
def test_an_expired_token_that_was_used_is_invalid_not_expired(db, model, purpose, other, fields):
    issued = timezone.now()
    raw = link_token_issue(model, user=UserFactory(), purpose=purpose, ttl=TTL, now=issued)
    link_token_consume(model, raw=raw, purpose=purpose, now=issued)
    with pytest.raises(InvalidLinkToken):
        link_token_consume(model, raw=raw, purpose=purpose, now=issued + 2 * TTL)


@pytest.mark.parametrize("model, purpose, other, fields", MODELS)
def test_wrong_purpose_is_invalid_and_leaves_the_token_usable(db, model, purpose, other, fields):
    raw = link_token_issue(model, user=UserFactory(), purpose=purpose, ttl=TTL)
    with pytest.raises(InvalidLinkToken):
        link_token_consume(model, raw=raw, purpose=other)
    assert _unspent(model, raw)
    assert link_token_consume(model, raw=raw, purpose=purpose).used_at is not None


@pytest.mark.parametrize("model, purpose, other, fields", MODELS)
@pytest.mark.parametrize("raw", ["", None, 42, "not-a-token", "A" * 10_000])
def test_unknown_or_malformed_tokens_are_invalid(db, model, purpose, other, fields, raw):
    link_token_issue(model, user=UserFactory(), purpose=purpose, ttl=TTL)
    with pytest.raises(InvalidLinkToken):
        link_token_consume(model, raw=raw, purpose=purpose)
    assert model.objects.get().used_at is None


@pytest.mark.parametrize("model, purpose, other, fields", MODELS)
def test_supersede_ends_only_the_users_earlier_tokens_of_that_purpose(db, model, purpose, other, fields):
    user, someone = UserFactory(), UserFactory()
    earlier = link_token_issue(model, user=user, purpose=purpose, ttl=TTL)
    other_purpose = link_token_issue(model, user=user, purpose=other, ttl=TTL)
    someone_elses = link_token_issue(model, user=someone, purpose=purpose, ttl=TTL)
    now = timezone.now()
    newest = link_token_issue(model, user=user, purpose=purpose, ttl=TTL, supersede=True, now=now)
    assert model.objects.get(token_hash=hash_token(earlier)).used_at == now
    with pytest.raises(InvalidLinkToken):
        link_token_consume(model, raw=earlier, purpose=purpose)
    for raw, raw_purpose in ((newest, purpose), (other_purpose, other), (someone_elses, purpose)):
        assert link_token_consume(model, raw=raw, purpose=raw_purpose).used_at is not None


@pytest.mark.parametrize("model, purpose, other, fields", MODELS)
def test_without_supersede_earlier_tokens_keep_working(db, model, purpose, other, fields):
    user = UserFactory()
    first = link_token_issue(model, user=user, purpose=purpose, ttl=TTL)
    second = link_token_issue(model, user=user, purpose=purpose, ttl=TTL)
    assert link_token_consume(model, raw=first, purpose=purpose).used_at is not None
    assert link_token_consume(model, raw=second, purpose=purpose).used_at is not None


# --- the check hook (how an owner adds a rule such as the security version) ----------------------------

class Superseded(InvalidLinkToken):
    audit_reason = "superseded"


@pytest.mark.parametrize("model, purpose, other, fields", MODELS)
def test_check_sees_the_loaded_row_and_can_refuse_without_spending(db, model, purpose, other, fields,
                                                                    django_assert_num_queries):
    user = UserFactory()
    raw = link_token_issue(model, user=user, purpose=purpose, ttl=TTL, **fields)
    seen = []

    def refuse(token):
        with django_assert_num_queries(0):  # joined: the check reads the user without a query
            seen.append((token.token_hash, token.used_at, token.user.email))
        raise Superseded()

    with pytest.raises(Superseded):
        link_token_consume(model, raw=raw, purpose=purpose, check=refuse)
    assert seen == [(hash_token(raw), None, user.email)]
    assert _unspent(model, raw)


@pytest.mark.parametrize("model, purpose, other, fields", MODELS)
def test_check_is_not_asked_about_unknown_used_or_expired_tokens(db, model, purpose, other, fields):
    issued = timezone.now()
    raw = link_token_issue(model, user=UserFactory(), purpose=purpose, ttl=TTL, now=issued)

    def never(token):
        raise AssertionError("check ran")

    with pytest.raises(ExpiredLinkToken):
        link_token_consume(model, raw=raw, purpose=purpose, now=issued + TTL, check=never)
    with pytest.raises(InvalidLinkToken):
        link_token_consume(model, raw="unknown", purpose=purpose, check=never)
    link_token_consume(model, raw=raw, purpose=purpose, now=issued)
    with pytest.raises(InvalidLinkToken):
        link_token_consume(model, raw=raw, purpose=purpose, check=never)


@pytest.mark.parametrize("model, purpose, other, fields", MODELS)
def test_check_filters_narrow_the_spending_update(db, model, purpose, other, fields):
    """The rule holds at the UPDATE, not only at the read: a change committed in between refuses."""
    user = UserFactory()
    raw = link_token_issue(model, user=user, purpose=purpose, ttl=TTL)

    def still_active_but_changes_meanwhile(token):
        assert token.user.is_active  # what the read saw
        User.objects.filter(pk=token.user_id).update(is_active=False)  # another transaction's change
        return {"user__is_active": True}

    with pytest.raises(InvalidLinkToken):
        link_token_consume(model, raw=raw, purpose=purpose, check=still_active_but_changes_meanwhile)
    assert _unspent(model, raw)
    User.objects.filter(pk=user.pk).update(is_active=True)
    token = link_token_consume(model, raw=raw, purpose=purpose, check=lambda token: {"user__is_active": True})
    assert token.used_at is not None


def test_a_token_carrying_a_version_dies_when_the_version_moves_on(db):
    """The security-version rule, written with the two hooks only (fields at issue, check at use)."""
    user = UserFactory()

    def issue(version):
        return link_token_issue(SecurityToken, user=user, purpose=SecurityTokenPurpose.NOT_ME, ttl=TTL,
                                context={"version": version})

    def current_version(token):
        if token.context["version"] != token.user.name:  # the user as the consuming read saw it
            raise Superseded()
        return {"context__version": token.context["version"]}

    User.objects.filter(pk=user.pk).update(name="v1")
    user.name = "v1"
    old, current = issue("v0"), issue("v1")
    with pytest.raises(Superseded) as refused:
        link_token_consume(SecurityToken, raw=old, purpose=SecurityTokenPurpose.NOT_ME, check=current_version)
    assert refused.value.code == "invalid_token" and refused.value.audit_reason == "superseded"
    assert link_token_consume(SecurityToken, raw=current, purpose=SecurityTokenPurpose.NOT_ME,
                              check=current_version).context == {"version": "v1"}


@pytest.mark.parametrize("model, purpose, other, fields", MODELS)
def test_same_security_state_refuses_a_token_issued_before_the_last_change(db, model, purpose, other, fields):
    """core.links' own security-version rule (what account and security tokens both use)."""
    user = UserFactory()
    issue = lambda: link_token_issue(model, user=user, purpose=purpose, ttl=TTL,  # noqa: E731
                                     security_version=link_security_version(user=user, purpose=purpose))
    old = issue()
    User.objects.filter(pk=user.pk).update(security_version=user.security_version + 1)
    user.refresh_from_db()
    with pytest.raises(SupersededLinkToken) as refused:
        link_token_consume(model, raw=old, purpose=purpose, check=same_security_state)
    assert refused.value.code == "invalid_token" and refused.value.audit_reason == "superseded"
    assert isinstance(refused.value, InvalidLinkToken) and _unspent(model, old)

    def moved_on_after_the_read(token):  # a change committed between the read and the UPDATE
        narrowed = same_security_state(token)
        User.objects.filter(pk=token.user_id).update(security_version=token.security_version + 1)
        return narrowed

    raced = issue()
    with pytest.raises(InvalidLinkToken):
        link_token_consume(model, raw=raced, purpose=purpose, check=moved_on_after_the_read)
    assert _unspent(model, raced)
    user.refresh_from_db()
    assert link_token_consume(model, raw=issue(), purpose=purpose, check=same_security_state).used_at is not None


def test_exempt_purposes_carry_no_version_and_outlive_changes(db):
    user = UserFactory()
    purpose = TokenPurpose.EMAIL_CHANGE_REVERT
    assert purpose in SECURITY_STATE_EXEMPT_PURPOSES and link_security_version(user=user, purpose=purpose) is None
    assert link_security_version(user=user, purpose=TokenPurpose.RESET_PASSWORD) == user.security_version
    raw = link_token_issue(AccountToken, user=user, purpose=purpose, ttl=TTL, new_email="old@example.com",
                           security_version=link_security_version(user=user, purpose=purpose))
    User.objects.filter(pk=user.pk).update(security_version=user.security_version + 1)
    assert link_token_consume(AccountToken, raw=raw, purpose=purpose, check=same_security_state).used_at is not None


@pytest.mark.parametrize("error, status, code, message", [
    (InvalidLinkToken(), 400, "invalid_token", "This link is invalid or has already been used."),
    (ExpiredLinkToken(), 400, "token_expired", "This link has expired. Request a new one."),
])
def test_errors_answer_in_the_envelope(error, status, code, message):
    assert isinstance(error, ApiError)
    response = exception_handler(error, {})
    assert response.status_code == status
    assert response.data == {"error": {"code": code, "message": message}}


def test_consume_takes_part_in_the_callers_transaction(db):
    raw = link_token_issue(AccountToken, user=UserFactory(), purpose=TokenPurpose.RESET_PASSWORD, ttl=TTL)
    with pytest.raises(RuntimeError), transaction.atomic():
        link_token_consume(AccountToken, raw=raw, purpose=TokenPurpose.RESET_PASSWORD)
        raise RuntimeError("the use case fails after spending the token")
    assert _unspent(AccountToken, raw)  # rolled back with it: the link still works


# --- PostgreSQL: N requests race for one token; exactly one wins ---------------------------------------

@pytest.mark.postgres
@pytest.mark.parametrize("model, purpose, other, fields", MODELS)
def test_concurrent_consumers_exactly_one_wins(transactional_db, model, purpose, other, fields):
    parties = 6
    raw = link_token_issue(model, user=UserFactory(), purpose=purpose, ttl=TTL)
    barrier = threading.Barrier(parties, timeout=10)
    results, lock = [], threading.Lock()

    def everyone_has_read(token):  # runs after the read, before the conditional UPDATE
        barrier.wait()

    def consume():
        try:
            with transaction.atomic():
                token = link_token_consume(model, raw=raw, purpose=purpose, check=everyone_has_read)
                outcome = ("won", token.pk)
        except ApiError as exc:
            outcome = (exc.code, None)
        finally:
            connections.close_all()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=consume) for _ in range(parties)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    row = model.objects.get()
    assert sorted(results, key=str) == sorted([("won", row.pk)] + [("invalid_token", None)] * (parties - 1), key=str)
    assert row.used_at is not None


# --- public_url ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("base", ["https://auth.example.com", "https://auth.example.com/"])
def test_public_url_joins_the_public_base_and_the_route(settings, base):
    settings.AUTH_PUBLIC_URL = base
    assert public_url("web-login") == "https://auth.example.com/login"
    assert public_url("web-account-sessions") == "https://auth.example.com/account/sessions"
    assert public_url("web-verify-email", token="abc") == "https://auth.example.com/verify-email?token=abc"


def test_public_url_under_a_path_prefix(settings):
    settings.AUTH_PUBLIC_URL = "https://example.com/auth/"
    assert public_url("web-account-unlock", token="t") == "https://example.com/auth/account/unlock?token=t"


def test_public_url_encodes_the_query_in_order(settings):
    settings.AUTH_PUBLIC_URL = "https://auth.example.com"
    url = public_url("web-login", next="/account/email?x=1&y=2", email="nia+1@example.com", name="Zoë Ä")
    assert url == ("https://auth.example.com/login?next=%2Faccount%2Femail%3Fx%3D1%26y%3D2"
                   "&email=nia%2B1%40example.com&name=Zo%C3%AB+%C3%84")


def test_public_url_of_a_link_token_is_todays_hand_built_link(settings, db):
    settings.AUTH_PUBLIC_URL = "https://auth.example.com"
    raw = link_token_issue(SecurityToken, user=UserFactory(), purpose=SecurityTokenPurpose.UNLOCK, ttl=TTL)
    assert public_url("web-account-unlock", token=raw) == f"https://auth.example.com/account/unlock?token={raw}"


def test_public_url_of_an_unknown_route_fails_loudly():
    with pytest.raises(NoReverseMatch):
        public_url("no-such-page")

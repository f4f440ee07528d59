"""audit.refusals: every refusal gets exactly one success=False row, written where it survives the
refusal: after the rollback (audited_refusals), with the kept work (scope.refuse), or alone
(audit_refusal). The audit chain verifies afterwards."""

import uuid

import pytest
from django.db import transaction
from django.test import RequestFactory

from accounts.models import User
from audit.chain import chain_verify
from audit.models import AuditEvent, EventType
from audit.refusals import NO_REASON, RefusalScope, audit_refusal, audited_refusals
from audit.services import MASK, audit_record
from core.errors import ApiError
from tests.factories import UserFactory

IP = "198.51.100.7"
UA = "RefusalTest/1.0"


class Refused(ApiError):
    default_code = "refused_here"
    default_detail = "Refused."


class SoleOwner(ApiError):
    status_code = 409
    default_code = "sole_owner"

    def __init__(self, organizations):
        super().__init__("You are the only owner.")
        self.audit_context = {"organizations": organizations}


class Superseded(ApiError):
    default_code = "invalid_token"
    audit_reason = "superseded"


@pytest.fixture
def request_():
    return RequestFactory().post("/somewhere", REMOTE_ADDR=IP, HTTP_USER_AGENT=UA)


def refusal_rows():
    return list(AuditEvent.objects.filter(success=False).order_by("id"))


def name_of(user):
    return User.objects.values_list("name", flat=True).get(pk=user.pk)


def assert_chain_ok():
    result = chain_verify()
    assert result.ok, result.reason


# --- audited_refusals: the block rolls back, one row goes in after it --------------------------------

def test_an_api_error_rolls_the_block_back_then_writes_one_row(db, request_):
    user, other = UserFactory(name="before"), UserFactory()
    org = uuid.uuid4()
    error = Refused()
    with pytest.raises(Refused) as raised:
        with audited_refusals(event=EventType.EMAIL_VERIFICATION_FAILED, request=request_, actor=user,
                              attempt=1) as scope:
            assert isinstance(scope, RefusalScope)
            User.objects.filter(pk=user.pk).update(name="during")
            audit_record(event=EventType.PROFILE_UPDATED, actor=user)  # rolled back with the block
            scope.subject, scope.organization = other, org  # what the block learned before it refused
            scope.context["step"] = "consume"
            raise error
    assert raised.value is error
    assert name_of(user) == "before"
    assert AuditEvent.objects.count() == 1
    [row] = refusal_rows()
    assert (row.event, row.success, row.actor_id, row.subject_id, row.organization_id) == (
        EventType.EMAIL_VERIFICATION_FAILED, False, user.pk, other.pk, org)
    assert (row.ip_address, row.user_agent) == (IP, UA)
    assert row.context == {"attempt": 1, "step": "consume", "reason": "refused_here"}
    assert_chain_ok()


def test_subject_defaults_to_the_actor_and_session_is_recorded(db):
    user = UserFactory()
    session_id = uuid.uuid4()
    with pytest.raises(Refused):
        with audited_refusals(event=EventType.PASSWORD_RESET_FAILED, actor=user, session=session_id):
            raise Refused()
    [row] = refusal_rows()
    assert (row.actor_id, row.subject_id, row.session_id) == (user.pk, user.pk, session_id)


def test_audit_context_and_audit_reason_of_the_error_go_into_the_row(db):
    user = UserFactory()
    orgs = [str(uuid.uuid4()), str(uuid.uuid4())]
    with pytest.raises(SoleOwner):
        with audited_refusals(event=EventType.ACCOUNT_DELETE_REFUSED, actor=user, organizations="scope's"):
            raise SoleOwner(orgs)
    with pytest.raises(Superseded):
        with audited_refusals(event=EventType.PASSWORD_RESET_FAILED):
            raise Superseded()
    deletion, reset = refusal_rows()
    assert deletion.context == {"organizations": orgs, "reason": "sole_owner"}  # the error's context wins
    assert reset.context == {"reason": "superseded"}  # answers invalid_token, told apart in the trail
    assert_chain_ok()


def test_a_block_that_succeeds_commits_and_writes_no_refusal(db):
    user = UserFactory(name="before")
    with audited_refusals(event=EventType.EMAIL_VERIFICATION_FAILED, actor=user):
        User.objects.filter(pk=user.pk).update(name="after")
        audit_record(event=EventType.EMAIL_VERIFIED, actor=user)
    assert name_of(user) == "after"
    assert list(AuditEvent.objects.values_list("event", "success")) == [(EventType.EMAIL_VERIFIED, True)]


def test_a_value_returned_from_inside_the_block_comes_back(db):
    user = UserFactory()

    def flow():
        with audited_refusals(event=EventType.EMAIL_VERIFICATION_FAILED) as scope:
            scope.subject = user
            return user.pk

    assert flow() == user.pk
    assert not refusal_rows()


def test_anything_but_an_api_error_rolls_back_unaudited(db):
    user = UserFactory(name="before")
    with pytest.raises(ZeroDivisionError):
        with audited_refusals(event=EventType.EMAIL_VERIFICATION_FAILED, actor=user):
            User.objects.filter(pk=user.pk).update(name="during")
            1 / 0  # noqa: B018 - a bug, not a refusal
    assert name_of(user) == "before"
    assert not AuditEvent.objects.exists()


def test_nested_scopes_leave_exactly_one_row(db):
    """The inner row is rolled back with the outer block; the outer one stays."""
    user = UserFactory()
    with pytest.raises(Refused):
        with audited_refusals(event=EventType.ACCOUNT_DELETE_REFUSED, actor=user):
            with audited_refusals(event=EventType.ORG_INVITATION_ACCEPT_FAILED, actor=user):
                raise Refused()
    [row] = refusal_rows()
    assert row.event == EventType.ACCOUNT_DELETE_REFUSED
    assert_chain_ok()


def test_the_refusal_row_is_committed_on_its_own(transactional_db):
    """Real commits: the block's rollback does not take the refusal row with it."""
    user = UserFactory(name="before")
    with pytest.raises(Refused):
        with audited_refusals(event=EventType.PASSWORD_RESET_FAILED, actor=user):
            User.objects.filter(pk=user.pk).update(name="during")
            raise Refused()
    assert not transaction.get_connection().in_atomic_block
    assert name_of(user) == "before"
    assert [row.event for row in refusal_rows()] == [EventType.PASSWORD_RESET_FAILED]
    assert_chain_ok()


# --- scope.refuse: keep what the block wrote, commit it with the refusal row, then raise ----------------

def test_refuse_commits_the_block_with_its_row_then_raises(transactional_db, request_):
    user, owner = UserFactory(name="before"), UserFactory()
    session_id = uuid.uuid4()
    error = ApiError("This refresh token was already used.", code="refresh_token_reused", status_code=401)
    with pytest.raises(ApiError) as raised:
        with audited_refusals(event=EventType.TOKEN_REFRESH_FAILED, request=request_, actor=owner,
                              session=session_id, attempt=2) as scope:
            User.objects.filter(pk=user.pk).update(name="revoked")  # the work the refusal keeps
            audit_record(event=EventType.SESSION_REVOKED, subject=owner, session=session_id)
            scope.refuse(error, event=EventType.REFRESH_REUSE_DETECTED, actor=None, subject=owner,
                         spent_at="2026-01-01T00:00:00+00:00")
            raise AssertionError("refuse() returned")
    assert raised.value is error
    assert not transaction.get_connection().in_atomic_block
    assert name_of(user) == "revoked"
    revoked, refusal = AuditEvent.objects.order_by("id")
    assert revoked.event == EventType.SESSION_REVOKED and revoked.success
    assert (refusal.event, refusal.success, refusal.actor_id, refusal.subject_id, refusal.session_id) == (
        EventType.REFRESH_REUSE_DETECTED, False, None, owner.pk, session_id)
    assert (refusal.ip_address, refusal.user_agent) == (IP, UA)
    assert refusal.context == {"attempt": 2, "spent_at": "2026-01-01T00:00:00+00:00",
                               "reason": "refresh_token_reused"}
    assert_chain_ok()


def test_refuse_with_a_reason_and_the_scope_fields(db):
    user = UserFactory()
    org = uuid.uuid4()
    with pytest.raises(Refused):
        with audited_refusals(event=EventType.TOKEN_REFRESH_FAILED, actor=user) as scope:
            scope.organization = org
            scope.context["limit"] = "max_lifetime"
            scope.refuse(Refused(), reason="organization_max_lifetime")
    [row] = refusal_rows()
    assert (row.event, row.actor_id, row.subject_id, row.organization_id) == (
        EventType.TOKEN_REFRESH_FAILED, user.pk, user.pk, org)
    assert row.context == {"limit": "max_lifetime", "reason": "organization_max_lifetime"}


def test_refuse_with_no_reason_writes_no_reason_key(db):
    # The event names the refusal by itself (auth.token.reuse_detected rows never had a reason).
    user = UserFactory()
    error = Superseded()
    error.audit_context = {"reason": "from the error", "kept": 1}
    with pytest.raises(Superseded):
        with audited_refusals(event=EventType.TOKEN_REFRESH_FAILED, actor=user, reason="from the scope") as scope:
            scope.refuse(error, event=EventType.REFRESH_REUSE_DETECTED, reason=NO_REASON, spent_at="then")
    [row] = refusal_rows()
    assert row.event == EventType.REFRESH_REUSE_DETECTED
    assert row.context == {"spent_at": "then", "kept": 1}


def test_refuse_is_not_swallowed_by_except_exception_in_the_block(db):
    user = UserFactory(name="before")
    with pytest.raises(Refused):
        with audited_refusals(event=EventType.ACCOUNT_LOCKED, actor=user) as scope:
            User.objects.filter(pk=user.pk).update(name="locked")
            try:
                scope.refuse(Refused())
            except Exception:  # what a careless block might do
                pytest.fail("the marker was caught as an Exception")
    assert name_of(user) == "locked"
    assert len(refusal_rows()) == 1


def test_refuse_inside_a_nested_atomic_block_is_a_programming_error(db):
    user = UserFactory(name="before")
    with pytest.raises(RuntimeError, match="directly in its audited_refusals block"):
        with audited_refusals(event=EventType.ACCOUNT_LOCKED, actor=user) as scope:
            User.objects.filter(pk=user.pk).update(name="during")
            with transaction.atomic():
                scope.refuse(Refused())
    assert name_of(user) == "before"  # rolled back, unaudited: a bug, not a refusal
    assert not AuditEvent.objects.exists()


def test_refuse_after_the_block_is_a_programming_error(db):
    with audited_refusals(event=EventType.ACCOUNT_LOCKED) as scope:
        pass
    with pytest.raises(RuntimeError):
        scope.refuse(Refused())
    assert not AuditEvent.objects.exists()


# --- audit_refusal: the one-row form -----------------------------------------------------------------

def test_audit_refusal_writes_one_row_and_returns_the_error(db, request_):
    user = UserFactory()
    org, session_id = uuid.uuid4(), uuid.uuid4()
    error = Refused()
    with pytest.raises(Refused) as raised:
        raise audit_refusal(error, event=EventType.LOGIN_FAILED, request=request_, subject=user,
                            session=session_id, organization=org, email="n***@example.com", token="raw-secret")
    assert raised.value is error
    [row] = refusal_rows()
    assert (row.event, row.actor_id, row.subject_id, row.session_id, row.organization_id) == (
        EventType.LOGIN_FAILED, None, user.pk, session_id, org)
    assert (row.ip_address, row.user_agent) == (IP, UA)
    assert row.context == {"email": "n***@example.com", "token": MASK, "reason": "refused_here"}
    assert_chain_ok()


def test_audit_refusal_reason_order(db):
    audit_refusal(Refused(), event=EventType.LOGIN_FAILED, reason="invalid_credentials")
    audit_refusal(Superseded(), event=EventType.LOGIN_FAILED)
    audit_refusal(SoleOwner(["o"]), event=EventType.ACCOUNT_DELETE_REFUSED, reason="sole_owner", actor=None)
    assert [row.context for row in refusal_rows()] == [
        {"reason": "invalid_credentials"}, {"reason": "superseded"}, {"organizations": ["o"], "reason": "sole_owner"}]
    assert_chain_ok()

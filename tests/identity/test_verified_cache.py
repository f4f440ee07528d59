"""identity.services.tokens: a token verified once in this process is not verified again while cached; every
hit still checks the signing key is published and the time claims hold."""

import time
import uuid

import pytest

from identity.app_settings import app_settings
from identity.services import tokens
from identity.services.tokens import TokenError, access_token_issue, access_token_verify
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_cache():
    tokens.verified_cache_clear()
    yield
    tokens.verified_cache_clear()


@pytest.fixture
def signatures(monkeypatch):
    """How many signatures were checked."""
    checked = []
    original = tokens.jws.validate_compact

    def validate_compact(*args, **kwargs):
        checked.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(tokens.jws, "validate_compact", validate_compact)
    return checked


def issue(**kwargs):
    return access_token_issue(user=UserFactory(), session_id=uuid.uuid4(), **kwargs).token


def test_the_second_verification_of_a_token_checks_no_signature(signatures):
    token = issue()
    first = access_token_verify(token)
    second = access_token_verify(token)
    assert first == second and signatures == [1]
    second["sub"] = "changed"  # a caller's change does not reach the cache
    assert access_token_verify(token)["sub"] == first["sub"]


def test_other_bytes_are_verified_in_full_and_refused(signatures):
    token = issue()
    access_token_verify(token)
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    with pytest.raises(TokenError) as refused:
        access_token_verify(forged)
    assert refused.value.reason == "bad_signature" and signatures == [1, 1]


def test_a_cached_token_that_expired_is_refused(monkeypatch):
    ttl, leeway = int(app_settings.ACCESS_TOKEN_TTL.total_seconds()), int(app_settings.LEEWAY.total_seconds())
    now = int(time.time())
    token = issue(now=now)
    access_token_verify(token)
    # The clock moves past the expiry and the leeway (no sleep: a real one raced the second boundary in CI).
    monkeypatch.setattr(time, "time", lambda: float(now + ttl + leeway + 1))
    with pytest.raises(TokenError) as refused:
        access_token_verify(token)
    assert refused.value.reason.startswith("claims:")
    assert token not in tokens._verified


def test_the_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(tokens, "VERIFIED_CACHE_SIZE", 3)
    issued = [issue() for _ in range(5)]
    for token in issued:
        access_token_verify(token)
    assert list(tokens._verified) == issued[2:]
    access_token_verify(issued[2])  # a hit is the most recently used
    access_token_verify(issue())
    assert issued[2] in tokens._verified and issued[3] not in tokens._verified

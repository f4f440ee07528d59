"""Signing keys: the JWKS, encryption at rest, rotation at once and on a schedule, the in-process cache."""

import io
import json
import secrets
import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent, EventType
from core.crypto import DecryptionError, b64url
from identity import tasks
from identity.models import SigningKey
from identity.services import keys
from identity.services.tokens import access_token_issue
from tests.support.races import race
from tests.support.tokens import parts

JWKS_PATHS = ["/api/v1/auth/jwks", "/.well-known/jwks.json"]


def published_kids():
    return [k["kid"] for k in APIClient().get(JWKS_PATHS[0]).json()["keys"]]


@contextmanager
def travel(monkeypatch, when):
    """Time travel for the key services (they read django.utils.timezone.now)."""
    with monkeypatch.context() as m:
        m.setattr(timezone, "now", lambda: when)
        yield


def kid_of(token: str) -> str:
    return parts(token)[0]["kid"]


# --- JWKS ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", JWKS_PATHS)
def test_jwks_lists_public_keys_only(path, tokens):
    response = APIClient().get(path, HTTP_AUTHORIZATION="Bearer garbage")  # public: a bad token is ignored
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"keys"} and len(body["keys"]) == 1
    (key,) = body["keys"]
    assert key == {"kty": "OKP", "crv": "Ed25519", "x": key["x"], "kid": kid_of(tokens["accessToken"]),
                   "alg": "EdDSA", "use": "sig"}
    assert "d" not in key
    private = keys.signing_key_current().key.private_key.private_bytes_raw()
    assert b64url(private) not in response.content.decode()


@pytest.mark.parametrize("path", JWKS_PATHS)
def test_jwks_is_cacheable_but_briefly(path, tokens):
    cache_control = {part.strip() for part in APIClient().get(path)["Cache-Control"].split(",")}
    assert "public" in cache_control
    max_age = next(int(p.split("=")[1]) for p in cache_control if p.startswith("max-age="))
    # Short enough that a key published a day ahead is known everywhere before it signs.
    assert 60 <= max_age <= 3600
    assert "no-store" not in cache_control and "private" not in cache_control


def test_private_key_is_encrypted_at_rest(tokens, settings):
    signer = keys.signing_key_current()
    row = SigningKey.objects.get(kid=signer.kid)
    raw = signer.key.private_key.private_bytes_raw()
    for form in (b64url(raw), raw.hex(), raw.hex().upper()):
        assert form not in row.private_encrypted
    assert row.private_encrypted != ""
    assert keys._load_private(row).as_dict(private=False)["x"] == row.public_x
    # Bound to its kid: the ciphertext moved to another row does not decrypt.
    with pytest.raises(DecryptionError):
        keys._load_private(SigningKey(kid="other-kid", public_x=row.public_x, private_encrypted=row.private_encrypted))
    # Another key-encryption key cannot read it.
    settings.AUTH_KEY_ENCRYPTION_KEY = secrets.token_urlsafe(32)
    with pytest.raises(DecryptionError):
        keys._load_private(row)


def test_key_encryption_key_is_used_when_set(db, settings):
    settings.AUTH_KEY_ENCRYPTION_KEY = secrets.token_urlsafe(32)
    row = keys.signing_key_create()
    keys._load_private(row)  # readable under the configured key
    settings.AUTH_KEY_ENCRYPTION_KEY = ""  # the development fallback (SECRET_KEY) is another key
    with pytest.raises(DecryptionError):
        keys._load_private(row)


def test_jwks_before_any_token_already_lists_the_signer(db, user):
    assert not SigningKey.objects.exists()
    (key,) = APIClient().get(JWKS_PATHS[1]).json()["keys"]
    token = access_token_issue(user=user, session_id="00000000-0000-0000-0000-000000000000")
    assert kid_of(token.token) == key["kid"]


def test_first_key_is_created_on_demand_and_audited(db):
    assert not SigningKey.objects.exists()
    signer = keys.signing_key_current()
    assert list(SigningKey.objects.values_list("kid", flat=True)) == [signer.kid]
    assert AuditEvent.objects.filter(event=EventType.SIGNING_KEY_CREATED, context__kid=signer.kid).count() == 1
    assert keys.signing_key_current().kid == signer.kid  # cached, no second key


# --- rotation at once -----------------------------------------------------------------------------------

def test_rotate_signing_key_command(tokens, authed):
    old_kid = kid_of(tokens["accessToken"])
    out = io.StringIO()
    call_command("rotate_signing_key", stdout=out)
    new_kid = json.loads(out.getvalue())["kid"]
    assert new_kid != old_kid

    # The new key signs at once, in this very process (the cache does not keep the old signer).
    assert keys.signing_key_current().kid == new_kid
    refreshed = APIClient().post("/api/v1/auth/refresh", {"refreshToken": tokens["refreshToken"]}, format="json")
    assert refreshed.status_code == 200
    assert kid_of(refreshed.json()["accessToken"]) == new_kid
    # A token of the old key keeps working until it expires, and both keys are published.
    assert authed.get("/api/v1/auth/me").status_code == 200
    assert set(published_kids()) == {old_kid, new_kid}

    old, new = SigningKey.objects.get(kid=old_kid), SigningKey.objects.get(kid=new_kid)
    assert old.retires_at is not None and old.retires_at <= timezone.now()
    assert new.retires_at is None and new.activates_at <= timezone.now()
    event = AuditEvent.objects.get(event=EventType.SIGNING_KEY_ROTATED)
    assert event.context["kid"] == new_kid and event.context["retired"] == [old_kid]
    assert event.context["reason"] == "manage.py rotate_signing_key"


def test_retired_key_stays_published_until_its_last_token_expired(tokens, monkeypatch):
    old_kid = kid_of(tokens["accessToken"])
    new = keys.signing_key_rotate()
    retired_at = SigningKey.objects.get(kid=old_kid).retires_at
    keep = keys.keep_after_retire()
    # The last token the old key can sign (here, or in a process whose cache is as old as allowed)
    # expires TTL after that and is accepted for the leeway more: the key outlives all of them.
    last_expiry = retired_at + timedelta(seconds=keys.app_settings.KEY_CACHE_SECONDS) \
        + keys.app_settings.ACCESS_TOKEN_TTL + keys.app_settings.LEEWAY
    assert retired_at + keep >= last_expiry
    with travel(monkeypatch, last_expiry - timedelta(seconds=1)):
        assert set(published_kids()) == {old_kid, new.kid}
    with travel(monkeypatch, retired_at + keep + timedelta(seconds=1)):
        keys._cache_clear()  # what the in-process caches' expiry does in time (they run on monotonic time)
        assert published_kids() == [new.kid]
        assert keys.verification_key(old_kid) is None
        assert keys.verification_key(new.kid) is not None


def test_old_key_tokens_verify_until_they_expire(tokens, user):
    """After a rotation, tokens of the retired key are judged by their own exp like any other."""
    sid = tokens["session"]["id"]
    almost_expired = access_token_issue(user=user, session_id=sid, now=int(time.time()) - 890)
    expired = access_token_issue(user=user, session_id=sid, now=int(time.time()) - 1000)
    call_command("rotate_signing_key", stdout=io.StringIO())
    assert kid_of(almost_expired.token) == kid_of(expired.token) != keys.signing_key_current().kid
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {almost_expired.token}")
    assert client.get("/api/v1/auth/me").status_code == 200
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {expired.token}")
    assert client.get("/api/v1/auth/me").status_code == 401


@pytest.mark.postgres
def test_cache_refilled_during_rotation_does_not_keep_the_retired_signer(tokens):
    """Another thread of this process may load the signer between the rotation's cache clear and its
    commit; it sees the old key, still signing. After the commit this process must sign with the new one."""
    old_kid = keys.signing_key_current().kid

    with transaction.atomic():
        new = keys.signing_key_rotate()
        seen = race(lambda: keys.signing_key_current().kid)
    assert seen == [old_kid]  # the race happened: the cache was refilled with the old signer
    assert keys.signing_key_current().kid == new.kid


def test_manual_rotation_inside_a_rolled_back_transaction_changes_nothing(tokens):
    old_kid = keys.signing_key_current().kid
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            keys.signing_key_rotate()
            raise RuntimeError
    keys._cache_clear()
    assert keys.signing_key_current().kid == old_kid
    assert published_kids() == [old_kid]


# --- rotation on a schedule -------------------------------------------------------------------------------

def _age_signer(days: float, minutes: int = 0):
    signer = keys.signing_key_current()
    when = timezone.now() - timedelta(days=days, minutes=minutes)
    SigningKey.objects.filter(kid=signer.kid).update(created_at=when, activates_at=when)
    keys._cache_clear()
    return signer.kid


def test_scheduled_rotation_publishes_the_next_key_a_day_ahead(db, monkeypatch):
    assert keys.signing_keys_rotate_if_due() is None  # no key yet: nothing to rotate
    old_kid = _age_signer(days=28)
    assert keys.signing_keys_rotate_if_due() is None  # not due (30 days minus the day ahead)
    _age_signer(days=29, minutes=1)

    before = timezone.now()
    nxt = keys.signing_keys_rotate_if_due()
    assert nxt is not None
    assert before + timedelta(days=1) <= nxt.activates_at <= timezone.now() + timedelta(days=1)
    assert keys.signing_keys_rotate_if_due() is None  # a successor is already waiting
    event = AuditEvent.objects.get(event=EventType.SIGNING_KEY_ROTATED)
    assert event.context["reason"] == "scheduled" and event.context["retired"] == [old_kid]

    # Published now, so JWKS caches know it; not signing yet.
    assert set(published_kids()) == {old_kid, nxt.kid}
    assert keys.signing_key_current().kid == old_kid
    assert keys.verification_key(nxt.kid) is not None

    # At its activation it signs, even from a warm cache in this process.
    with travel(monkeypatch, nxt.activates_at - timedelta(seconds=1)):
        assert keys.signing_key_current().kid == old_kid
    with travel(monkeypatch, nxt.activates_at + timedelta(seconds=1)):
        assert keys.signing_key_current().kid == nxt.kid
        assert set(published_kids()) == {old_kid, nxt.kid}  # the old one's tokens still live
    with travel(monkeypatch, nxt.activates_at + keys.keep_after_retire() + timedelta(seconds=1)):
        keys._cache_clear()  # the in-process caches expire on monotonic time, which travel does not move
        assert published_kids() == [nxt.kid]


def test_scheduled_rotation_uses_the_time_it_is_given(db):
    _age_signer(days=1)
    later = timezone.now() + timedelta(days=30)
    nxt = keys.signing_keys_rotate_if_due(now=later)
    assert nxt is not None
    assert nxt.activates_at == later + timedelta(days=1)


def test_manual_rotation_supersedes_a_key_waiting_to_start(db, monkeypatch):
    old_kid = _age_signer(days=29, minutes=1)
    waiting = keys.signing_keys_rotate_if_due()
    manual = keys.signing_key_rotate()
    assert keys.signing_key_current().kid == manual.kid
    # The key that was waiting never signs; the manual one keeps signing after its start time.
    with travel(monkeypatch, waiting.activates_at + timedelta(hours=1)):
        keys._cache_clear()
        assert keys.signing_key_current().kid == manual.kid
        assert SigningKey.objects.signing_at(timezone.now()).first().kid == manual.kid
        assert waiting.kid not in SigningKey.objects.signing_at(timezone.now()).values_list("kid", flat=True)
    # Nothing is left waiting, so the schedule goes on from the manual key.
    assert not SigningKey.objects.pending_at(timezone.now()).exists()
    assert set(SigningKey.objects.filter(retires_at__isnull=True).values_list("kid", flat=True)) == {manual.kid}
    assert old_kid != manual.kid


def test_rotation_task(db):
    assert tasks.signing_keys_rotate_if_due.delay().get() is None
    _age_signer(days=31)
    kid = tasks.signing_keys_rotate_if_due.delay().get()
    assert SigningKey.objects.filter(kid=kid, activates_at__gt=timezone.now()).exists()

"""Passkeys over the API (CONTRACT.md "Passkeys") with a software authenticator (tests/support/webauthn.py):
registration, the passwordless sign-in, the passkey as a second factor, the list, and every refusal rule
(origin, rp id, challenge: wrong, replayed, expired, other kind; user verification, signature, another
user's credential with the victim's user handle, a counter that went back)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent, EventType
from identity.services.tokens import access_token_verify
from mfa.models import MfaChallenge
from passkeys.models import CeremonyKind, Passkey, WebAuthnCeremony
from sessions_app.models import DeviceSession
from tests.factories import UserFactory
from tests.mfa.support import MFA, VERIFY, bearer_for, enrol, password_step
from tests.support.auth import bearer, login
from tests.support.errors import error_of
from tests.support.webauthn import SoftAuthenticator, b64

PASSKEYS = "/api/v1/auth/passkeys"
LOGIN_OPTIONS = f"{PASSKEYS}/login/options"
LOGIN_VERIFY = f"{PASSKEYS}/login/verify"


def register(user, client: APIClient | None = None, *, alg: str = "ES256", name: str = "Laptop"):
    """A new passkey of ``user`` through the API; returns (authenticator, Passkey JSON)."""
    client = client or bearer_for(user)
    authenticator = SoftAuthenticator(alg)
    options = client.post(f"{PASSKEYS}/register/options")
    assert options.status_code == 200, options.content
    response = client.post(f"{PASSKEYS}/register/verify",
                           {"credential": authenticator.create(options.json()), "name": name}, format="json")
    assert response.status_code == 201, response.content
    return authenticator, response.json()


def login_options(client: APIClient | None = None) -> dict:
    response = (client or APIClient()).post(LOGIN_OPTIONS)
    assert response.status_code == 200, response.content
    return response.json()


def passkey_sign_in(authenticator: SoftAuthenticator, client: APIClient | None = None, **knobs):
    """One passwordless attempt: options, the authenticator's answer (``knobs`` break a rule), verify."""
    client = client or APIClient()
    ceremony = login_options(client)
    credential = authenticator.get(ceremony["options"], **knobs)
    return client.post(LOGIN_VERIFY, {"ceremonyId": ceremony["ceremonyId"], "credential": credential}, format="json")


def passkey_sessions(user=None) -> int:
    rows = DeviceSession.objects.filter(user=user) if user is not None else DeviceSession.objects.all()
    return sum("hwk" in row.amr for row in rows)


def refused(response, user, *, sessions: int = 0) -> None:
    """The one shape of a passkey refusal: 401 invalid_passkey, no (new) session, an audit row."""
    error_of(response, 401, "invalid_passkey")
    assert passkey_sessions(user) == sessions
    assert AuditEvent.objects.filter(event=EventType.PASSKEY_REFUSED, subject_id=user.pk, success=False).exists()


# --- registration --------------------------------------------------------------------------------

def test_creation_options_ask_for_a_discoverable_verified_passkey_and_exclude_the_users_own(db):
    user = UserFactory()
    client = bearer_for(user)
    options = client.post(f"{PASSKEYS}/register/options")
    assert options.status_code == 200 and "no-store" in options["Cache-Control"]
    body = options.json()
    assert body["rp"] == {"id": "localhost", "name": "Mana"}
    assert body["user"]["name"] == user.email and body["user"]["id"] == b64(user.pk.bytes)
    assert {-8, -7} <= {p["alg"] for p in body["pubKeyCredParams"]}
    assert body["authenticatorSelection"]["residentKey"] == "required"
    assert body["authenticatorSelection"]["userVerification"] == "required"
    assert body["excludeCredentials"] == [] and len(body["challenge"]) >= 43
    authenticator, _ = register(user, client)
    excluded = client.post(f"{PASSKEYS}/register/options").json()["excludeCredentials"]
    assert [c["id"] for c in excluded] == [authenticator.id] and "internal" in excluded[0]["transports"]


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_a_new_passkey_is_listed_counted_mailed_audited_and_signs_in_on_its_own(db, alg):
    user = UserFactory()
    client = bearer_for(user)
    mail.outbox.clear()
    authenticator, passkey = register(user, client, alg=alg, name="  My   phone ")
    assert set(passkey) == {"id", "name", "createdAt", "lastUsedAt"}
    assert passkey["name"] == "My phone" and passkey["lastUsedAt"] is None
    assert client.get(PASSKEYS).json() == {"passkeys": [passkey]}
    assert client.get(MFA).json()["passkeys"] == 1
    assert [m.to for m in mail.outbox] == [[user.email]] and "My phone" in mail.outbox[0].body
    assert AuditEvent.objects.filter(event=EventType.PASSKEY_ADDED, actor_id=user.pk).count() == 1

    response = passkey_sign_in(authenticator)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["session"]["amr"] == ["hwk", "user", "mfa"] and body["user"]["email"] == user.email
    assert access_token_verify(body["accessToken"])["amr"] == ["hwk", "user", "mfa"]
    assert "deviceToken" in body and "no-store" in response["Cache-Control"]
    assert bearer(body).get("/api/v1/auth/me").status_code == 200
    assert client.get(PASSKEYS).json()["passkeys"][0]["lastUsedAt"] is not None
    assert Passkey.objects.get(user=user).sign_count == 1
    assert AuditEvent.objects.filter(event=EventType.PASSKEY_USED, actor_id=user.pk).count() == 1
    assert AuditEvent.objects.filter(event=EventType.LOGIN_SUCCEEDED, actor_id=user.pk,
                                     context__amr=["hwk", "user", "mfa"]).count() == 1


def test_registration_needs_a_fresh_session(db):
    user = UserFactory()
    client = bearer_for(user)
    DeviceSession.objects.filter(user=user).update(reauthenticated_at=timezone.now() - timedelta(hours=1))
    error_of(client.post(f"{PASSKEYS}/register/options"), 403, "reauthentication_required")
    error_of(client.post(f"{PASSKEYS}/register/verify", {"credential": {}}, format="json"), 403,
             "reauthentication_required")
    error_of(APIClient().post(f"{PASSKEYS}/register/options"), 401)


def _options(client):
    return client.post(f"{PASSKEYS}/register/options").json()


@pytest.mark.parametrize("knobs", [
    {"origin": "https://evil.example"},
    {"origin": "http://localhost:8001"},
    {"rp_id": "evil.example"},
    {"uv": False},
    {"kind": "webauthn.get"},
    {"challenge": b64(b"x" * 32)},
], ids=["origin", "port", "rp_id", "no_uv", "type", "challenge"])
def test_a_registration_that_breaks_a_rule_is_refused_and_audited(db, knobs):
    user = UserFactory()
    client = bearer_for(user)
    credential = SoftAuthenticator().create(_options(client), **knobs)
    response = client.post(f"{PASSKEYS}/register/verify", {"credential": credential}, format="json")
    error_of(response, 400, "invalid_passkey")
    assert not Passkey.objects.exists()
    assert AuditEvent.objects.filter(event=EventType.PASSKEY_ADD_REFUSED, actor_id=user.pk, success=False).count() == 1


def test_a_registration_challenge_is_single_use_expires_and_belongs_to_its_user(db):
    user, other = UserFactory(), UserFactory()
    client = bearer_for(user)
    options = _options(client)
    assert client.post(f"{PASSKEYS}/register/verify", {"credential": SoftAuthenticator().create(options)},
                       format="json").status_code == 201
    replay = client.post(f"{PASSKEYS}/register/verify", {"credential": SoftAuthenticator().create(options)},
                         format="json")
    error_of(replay, 400, "invalid_passkey")
    expired = _options(client)
    WebAuthnCeremony.objects.filter(used_at__isnull=True).update(expires_at=timezone.now() - timedelta(seconds=1))
    error_of(client.post(f"{PASSKEYS}/register/verify", {"credential": SoftAuthenticator().create(expired)},
                         format="json"), 400, "invalid_passkey")
    theirs = _options(bearer_for(other))  # another user's ceremony, answered in this user's request
    error_of(client.post(f"{PASSKEYS}/register/verify", {"credential": SoftAuthenticator().create(theirs)},
                         format="json"), 400, "invalid_passkey")
    ceremony = WebAuthnCeremony.objects.get(user=other)
    error_of(client.post(f"{PASSKEYS}/register/verify", {"credential": SoftAuthenticator().create(theirs),
                                                         "ceremonyId": str(ceremony.pk)}, format="json"),
             400, "invalid_passkey")
    login_ceremony = login_options()  # an authentication challenge does not register
    fake = {**theirs, "challenge": login_ceremony["options"]["challenge"]}
    error_of(client.post(f"{PASSKEYS}/register/verify", {"credential": SoftAuthenticator().create(fake),
                                                         "ceremonyId": login_ceremony["ceremonyId"]},
                         format="json"), 400, "invalid_passkey")
    assert Passkey.objects.filter(user=user).count() == 1 and not Passkey.objects.filter(user=other).exists()


def test_a_credential_registered_already_is_refused(db):
    user, other = UserFactory(), UserFactory()
    client = bearer_for(user)
    authenticator, _ = register(user, client)
    again = authenticator.create(_options(client))  # what excludeCredentials prevents in a browser
    error_of(client.post(f"{PASSKEYS}/register/verify", {"credential": again}, format="json"), 400, "invalid_passkey")
    other_client = bearer_for(other)
    stolen = authenticator.create(_options(other_client))
    error_of(other_client.post(f"{PASSKEYS}/register/verify", {"credential": stolen}, format="json"), 400,
             "invalid_passkey")
    assert Passkey.objects.get().user_id == user.pk


@pytest.mark.parametrize("credential", [None, "x", [], {}, {"id": "AA", "rawId": "AA"},
                                        {"id": "!!", "rawId": "!!", "type": "public-key", "response": {
                                            "clientDataJSON": "!!", "attestationObject": "!!"}}])
def test_malformed_registrations_are_4xx(db, credential):
    user = UserFactory()
    client = bearer_for(user)
    _options(client)
    response = client.post(f"{PASSKEYS}/register/verify", {"credential": credential}, format="json")
    error_of(response, 400)


# --- passwordless sign-in ------------------------------------------------------------------------

def test_request_options_are_discoverable_with_user_verification(db):
    body = login_options()
    assert set(body) == {"ceremonyId", "options"}
    options = body["options"]
    assert options["allowCredentials"] == [] and options["userVerification"] == "required"
    assert options["rpId"] == "localhost" and len(options["challenge"]) >= 43
    row = WebAuthnCeremony.objects.get(pk=body["ceremonyId"])
    assert row.kind == CeremonyKind.AUTHENTICATION and row.user is None
    assert timedelta(minutes=4) < row.expires_at - timezone.now() <= timedelta(minutes=5)


@pytest.mark.parametrize("knobs", [
    {"origin": "https://evil.example"},
    {"origin": "http://localhost"},
    {"rp_id": "example.com"},
    {"uv": False},
    {"up": False},
    {"tamper": True},
    {"kind": "webauthn.create"},
    {"challenge": b64(b"y" * 32)},
    {"user_handle": None},
], ids=["origin", "origin_port", "rp_id", "no_uv", "no_up", "signature", "type", "challenge", "no_user_handle"])
def test_a_sign_in_that_breaks_a_rule_is_refused_without_a_session(db, knobs):
    user = UserFactory()
    authenticator, _ = register(user)
    refused(passkey_sign_in(authenticator, **knobs), user)
    assert passkey_sign_in(authenticator).status_code == 200  # the passkey itself still works


def test_a_sign_in_challenge_is_single_use_expires_and_is_of_its_kind(db):
    user = UserFactory()
    authenticator, _ = register(user)
    client = APIClient()
    ceremony = login_options(client)
    credential = authenticator.get(ceremony["options"])
    body = {"ceremonyId": ceremony["ceremonyId"], "credential": credential}
    assert client.post(LOGIN_VERIFY, body, format="json").status_code == 200
    refused(client.post(LOGIN_VERIFY, body, format="json"), user, sessions=1)  # replayed as it was
    replay = authenticator.get(ceremony["options"])  # a fresh assertion for the spent challenge
    refused(client.post(LOGIN_VERIFY, {"ceremonyId": ceremony["ceremonyId"], "credential": replay},
                        format="json"), user, sessions=1)

    expired = login_options(client)
    WebAuthnCeremony.objects.filter(pk=expired["ceremonyId"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.post(LOGIN_VERIFY, {"ceremonyId": expired["ceremonyId"],
                                          "credential": authenticator.get(expired["options"])}, format="json")
    error_of(response, 401, "invalid_passkey")

    registration = bearer_for(user).post(f"{PASSKEYS}/register/options").json()  # another kind
    row = WebAuthnCeremony.objects.get(kind=CeremonyKind.REGISTRATION, used_at__isnull=True)
    response = client.post(LOGIN_VERIFY, {"ceremonyId": str(row.pk), "credential": authenticator.get(
        {"challenge": registration["challenge"]})}, format="json")
    error_of(response, 401, "invalid_passkey")

    other = login_options(client)  # the answer to one ceremony sent with another's id
    answer = authenticator.get(login_options(client)["options"])
    error_of(client.post(LOGIN_VERIFY, {"ceremonyId": other["ceremonyId"], "credential": answer}, format="json"),
             401, "invalid_passkey")
    error_of(client.post(LOGIN_VERIFY, {"ceremonyId": "00000000-0000-0000-0000-000000000000",
                                        "credential": answer}, format="json"), 401, "invalid_passkey")
    assert passkey_sessions(user) == 1


def test_an_attackers_own_credential_answering_with_the_victims_user_handle_gets_nothing(db):
    victim, attacker = UserFactory(), UserFactory()
    register(victim)
    theirs, _ = register(attacker)
    response = passkey_sign_in(theirs, user_handle=b64(victim.pk.bytes))
    error_of(response, 401, "invalid_passkey")
    assert not passkey_sessions()
    row = AuditEvent.objects.get(event=EventType.PASSKEY_REFUSED)
    assert row.subject_id == victim.pk and row.context["reason"] == "user_handle_mismatch"


def test_an_unknown_credential_is_refused(db):
    stranger = SoftAuthenticator()
    stranger.user_handle = b64(b"\x00" * 16)
    response = passkey_sign_in(stranger)
    error_of(response, 401, "invalid_passkey")
    assert AuditEvent.objects.filter(event=EventType.PASSKEY_REFUSED, context__reason="unknown_credential").exists()


def test_a_counter_that_goes_back_is_a_cloned_authenticator(db):
    user = UserFactory()
    authenticator, _ = register(user)
    assert passkey_sign_in(authenticator, counter=5).status_code == 200
    refused(passkey_sign_in(authenticator, counter=5), user, sessions=1)  # stands still
    refused(passkey_sign_in(authenticator, counter=3), user, sessions=1)  # goes back
    assert AuditEvent.objects.filter(event=EventType.PASSKEY_REFUSED, context__reason="counter").count() == 2
    assert Passkey.objects.get(user=user).sign_count == 5
    assert passkey_sign_in(authenticator, counter=6).status_code == 200


def test_an_authenticator_without_a_counter_always_sends_zero(db):
    user = UserFactory()
    authenticator, _ = register(user)
    assert passkey_sign_in(authenticator, counter=0).status_code == 200
    assert passkey_sign_in(authenticator, counter=0).status_code == 200


@pytest.mark.parametrize("body", [{}, {"ceremonyId": "nope", "credential": {}}, {"ceremonyId": 5, "credential": {}},
                                  {"ceremonyId": "00000000-0000-0000-0000-000000000000", "credential": "x"}])
def test_malformed_sign_ins_are_400(db, body):
    error_of(APIClient().post(LOGIN_VERIFY, body, format="json"), 400, "validation_error")


@pytest.mark.parametrize("credential", [{}, {"id": "AA"}, {"id": "AA", "rawId": "AA", "type": "public-key",
                                                           "response": {"clientDataJSON": "!", "authenticatorData": "!",
                                                                        "signature": "!", "userHandle": "!"}}])
def test_credentials_that_do_not_parse_are_invalid_passkeys(db, credential):
    ceremony = login_options()
    response = APIClient().post(LOGIN_VERIFY, {"ceremonyId": ceremony["ceremonyId"], "credential": credential},
                                format="json")
    error_of(response, 401, "invalid_passkey")


def test_an_inactive_user_cannot_sign_in_with_a_passkey(db):
    user = UserFactory()
    authenticator, _ = register(user)
    user.is_active = False
    user.save(update_fields=["is_active"])
    error_of(passkey_sign_in(authenticator), 401, "invalid_passkey")


# --- a passkey as the second factor --------------------------------------------------------------

def _mfa_options(client, token):
    response = client.post(f"{MFA}/passkey/options", {"mfaToken": token}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_after_a_password_a_user_with_only_a_passkey_is_asked_for_it(db):
    user = UserFactory()
    authenticator, _ = register(user)
    client = APIClient()
    step = password_step(client, user)
    assert step["methods"] == ["passkey"]
    ceremony = _mfa_options(client, step["mfaToken"])
    assert [c["id"] for c in ceremony["options"]["allowCredentials"]] == [authenticator.id]
    assert ceremony["options"]["userVerification"] == "required"
    response = client.post(VERIFY, {"mfaToken": step["mfaToken"], "ceremonyId": ceremony["ceremonyId"],
                                    "credential": authenticator.get(ceremony["options"])}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["session"]["amr"] == ["pwd", "hwk", "user", "mfa"]
    assert AuditEvent.objects.filter(event=EventType.MFA_VERIFIED, actor_id=user.pk, context__method="passkey").exists()
    assert AuditEvent.objects.filter(event=EventType.PASSKEY_USED, actor_id=user.pk,
                                     context__use="second_factor").exists()


def test_with_totp_and_a_passkey_the_methods_list_both(db):
    user = UserFactory()
    client = bearer_for(user)
    enrol(user, client)
    register(user, client)
    assert password_step(APIClient(), user)["methods"] == ["totp", "recovery_code", "passkey"]


def test_a_second_factor_passkey_must_be_the_users_and_its_ceremony_theirs(db):
    user, attacker = UserFactory(), UserFactory()
    register(user)
    theirs, _ = register(attacker)
    client = APIClient()
    sessions = DeviceSession.objects.filter(user=user).count()
    step = password_step(client, user)
    ceremony = _mfa_options(client, step["mfaToken"])
    response = client.post(VERIFY, {"mfaToken": step["mfaToken"], "ceremonyId": ceremony["ceremonyId"],
                                    "credential": theirs.get(ceremony["options"], user_handle=b64(user.pk.bytes))},
                           format="json")
    error_of(response, 401, "invalid_passkey")
    assert MfaChallenge.objects.get(user=user).failures == 1
    assert AuditEvent.objects.filter(event=EventType.PASSKEY_REFUSED, subject_id=user.pk,
                                     context__reason="credential_of_other_user").exists()
    assert AuditEvent.objects.filter(event=EventType.MFA_FAILED, subject_id=user.pk,
                                     context__reason="invalid_passkey").exists()
    assert DeviceSession.objects.filter(user=user).count() == sessions


def test_ceremonies_of_the_two_uses_do_not_cross(db):
    user = UserFactory()
    authenticator, _ = register(user)
    client = APIClient()
    sessions = DeviceSession.objects.filter(user=user).count()
    step = password_step(client, user)
    passwordless = login_options(client)  # a ceremony opened for no user does not answer a challenge
    response = client.post(VERIFY, {"mfaToken": step["mfaToken"], "ceremonyId": passwordless["ceremonyId"],
                                    "credential": authenticator.get(passwordless["options"])}, format="json")
    error_of(response, 401, "invalid_passkey")
    second = _mfa_options(client, step["mfaToken"])  # and a second-factor ceremony does not sign in alone
    response = client.post(LOGIN_VERIFY, {"ceremonyId": second["ceremonyId"],
                                          "credential": authenticator.get(second["options"])}, format="json")
    refused(response, user)
    assert DeviceSession.objects.filter(user=user).count() == sessions


def test_the_second_factor_request_takes_exactly_one_answer(db):
    user = UserFactory()
    register(user)
    client = APIClient()
    token = password_step(client, user)["mfaToken"]
    ceremony = _mfa_options(client, token)
    for body in ({"code": "123456", "ceremonyId": ceremony["ceremonyId"], "credential": {}},
                 {"ceremonyId": ceremony["ceremonyId"]}, {"credential": {}},
                 {"recoveryCode": "abcde-fghjk", "ceremonyId": ceremony["ceremonyId"], "credential": {}}):
        error_of(client.post(VERIFY, {"mfaToken": token, **body}, format="json"), 400, "validation_error")
    error_of(client.post(f"{MFA}/passkey/options", {"mfaToken": "mfa_nope"}, format="json"), 401, "mfa_token_invalid")


# --- the list: rename, remove --------------------------------------------------------------------

def test_rename_and_remove_only_ones_own_passkeys(db):
    user, other = UserFactory(), UserFactory()
    client = bearer_for(user)
    _, passkey = register(user, client)
    _, theirs = register(other)
    renamed = client.patch(f"{PASSKEYS}/{passkey['id']}", {"name": "Work key"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "Work key"
    assert AuditEvent.objects.filter(event=EventType.PASSKEY_RENAMED, actor_id=user.pk).count() == 1
    error_of(client.patch(f"{PASSKEYS}/{theirs['id']}", {"name": "Mine"}, format="json"), 404, "not_found")
    error_of(client.delete(f"{PASSKEYS}/{theirs['id']}"), 404, "not_found")
    error_of(client.patch(f"{PASSKEYS}/{passkey['id']}", {"name": ""}, format="json"), 400, "validation_error")
    mail.outbox.clear()
    assert client.delete(f"{PASSKEYS}/{passkey['id']}").status_code == 204
    assert [m.to for m in mail.outbox] == [[user.email]] and "removed" in mail.outbox[0].body
    assert AuditEvent.objects.filter(event=EventType.PASSKEY_REMOVED, actor_id=user.pk).count() == 1
    assert client.get(PASSKEYS).json() == {"passkeys": []}
    error_of(client.delete(f"{PASSKEYS}/{passkey['id']}"), 404, "not_found")
    assert Passkey.objects.filter(user=other).count() == 1
    assert "accessToken" in login(APIClient(), user.email)  # no second factor left


def test_rename_and_remove_need_a_fresh_session_listing_does_not(db):
    user = UserFactory()
    client = bearer_for(user)
    _, passkey = register(user, client)
    DeviceSession.objects.filter(user=user).update(reauthenticated_at=timezone.now() - timedelta(hours=1))
    assert client.get(PASSKEYS).status_code == 200
    error_of(client.patch(f"{PASSKEYS}/{passkey['id']}", {"name": "x"}, format="json"), 403, "reauthentication_required")
    error_of(client.delete(f"{PASSKEYS}/{passkey['id']}"), 403, "reauthentication_required")


def test_adding_a_first_passkey_ends_other_sessions_and_trusted_devices(db):
    user = UserFactory()
    other = login(APIClient(), user.email)
    client = bearer_for(user)
    register(user, client)
    error_of(bearer(other).get("/api/v1/auth/me"), 401)  # signed in with one factor: ended
    assert client.get("/api/v1/auth/me").status_code == 200

    # TOTP users: a trusted device ends with the change of factors
    totp_user = UserFactory()
    totp_client = bearer_for(totp_user)
    secret, _ = enrol(totp_user, totp_client)
    from tests.mfa.support import code_at

    step = password_step(APIClient(), totp_user)
    trusted = APIClient().post(VERIFY, {"mfaToken": step["mfaToken"], "code": code_at(secret),
                                        "trustDevice": True}, format="json").json()["trustedDeviceToken"]
    register(totp_user, totp_client)
    again = password_step(APIClient(), totp_user, trustedDeviceToken=trusted)
    assert again["mfaRequired"] is True


# --- step-up with a passkey ----------------------------------------------------------------------

REAUTH = "/api/v1/auth/reauthenticate"


def _stale(user):
    DeviceSession.objects.filter(user=user).update(reauthenticated_at=timezone.now() - timedelta(hours=1))


def test_step_up_accepts_the_users_passkey(db):
    user = UserFactory()
    client = bearer_for(user)
    authenticator, _ = register(user, client)
    _stale(user)
    error_of(client.post(f"{PASSKEYS}/register/options"), 403, "reauthentication_required")
    ceremony = client.post(f"{PASSKEYS}/reauthenticate/options").json()
    assert [c["id"] for c in ceremony["options"]["allowCredentials"]] == [authenticator.id]
    response = client.post(REAUTH, {"ceremonyId": ceremony["ceremonyId"],
                                    "credential": authenticator.get(ceremony["options"])}, format="json")
    assert response.status_code == 200, response.content
    assert set(response.json()) == {"reauthenticatedAt", "freshUntil"}
    assert client.post(f"{PASSKEYS}/register/options").status_code == 200
    assert AuditEvent.objects.filter(event=EventType.REAUTHENTICATED, actor_id=user.pk,
                                     context__method="passkey").count() == 1


def test_step_up_refuses_another_users_passkey_and_a_passwordless_ceremony(db):
    user, attacker = UserFactory(), UserFactory()
    client = bearer_for(user)
    register(user, client)
    theirs, _ = register(attacker)
    _stale(user)
    ceremony = client.post(f"{PASSKEYS}/reauthenticate/options").json()
    response = client.post(REAUTH, {"ceremonyId": ceremony["ceremonyId"], "credential": theirs.get(
        ceremony["options"], user_handle=b64(user.pk.bytes))}, format="json")
    error_of(response, 401, "invalid_passkey")
    passwordless = login_options()
    mine = Passkey.objects.get(user=user)
    assert mine.sign_count == 0
    response = client.post(REAUTH, {"ceremonyId": passwordless["ceremonyId"],
                                    "credential": theirs.get(passwordless["options"])}, format="json")
    error_of(response, 401, "invalid_passkey")
    error_of(client.post(f"{PASSKEYS}/register/options"), 403, "reauthentication_required")  # still stale
    assert AuditEvent.objects.filter(event=EventType.REAUTHENTICATION_FAILED, actor_id=user.pk,
                                     context__reason="invalid_passkey").count() == 2
    for body in ({"password": "x", "ceremonyId": ceremony["ceremonyId"], "credential": {}},
                 {"ceremonyId": ceremony["ceremonyId"]}, {}):
        error_of(client.post(REAUTH, body, format="json"), 400, "validation_error")


def test_expired_ceremonies_are_cleaned_up(db):
    from passkeys import tasks

    login_options()
    fresh = login_options()
    WebAuthnCeremony.objects.exclude(pk=fresh["ceremonyId"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert tasks.ceremonies_cleanup.delay().get() == 1
    assert [str(pk) for pk in WebAuthnCeremony.objects.values_list("pk", flat=True)] == [fresh["ceremonyId"]]

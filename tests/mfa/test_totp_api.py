"""Two-factor over the API (CONTRACT.md "Two-factor authentication"): TOTP setup and confirmation,
the login's second step, replay, recovery codes, trusted devices, removal, step-up with a code."""

from __future__ import annotations

from datetime import timedelta

from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent, EventType
from identity.services.tokens import access_token_verify
from mfa.models import MfaChallenge, RecoveryCode, TotpDevice, TrustedDevice
from mfa.services import _recovery_hash
from sessions_app.models import DeviceSession
from tests.factories import PASSWORD, UserFactory
from tests.mfa.support import MFA, VERIFY, away_from_step_end, bearer_for, code_at, enrol, password_step
from tests.support.auth import bearer, login, login_attempt
from tests.support.errors import error_of

NEW_PASSWORD = "A-Brand-New-Passphrase-42"


def events(user, event) -> int:
    return AuditEvent.objects.filter(event=event, subject_id=user.pk).count() + \
        AuditEvent.objects.filter(event=event, actor_id=user.pk, subject_id__isnull=True).count()


# --- setup ---------------------------------------------------------------------------------------

def test_setup_gives_a_secret_that_is_stored_encrypted_and_enforced_only_once_confirmed(db):
    user = UserFactory()
    client = bearer_for(user)
    setup = client.post(f"{MFA}/totp/setup")
    assert setup.status_code == 200 and "no-store" in setup["Cache-Control"]
    body = setup.json()
    assert set(body) == {"secret", "otpauthUrl"}
    assert body["otpauthUrl"].startswith("otpauth://totp/") and f"secret={body['secret']}" in body["otpauthUrl"]
    row = TotpDevice.objects.get(user=user)
    assert body["secret"] not in row.secret_encrypted and row.confirmed_at is None
    assert client.get(MFA).json() == {"totp": False, "passkeys": 0, "recoveryCodesLeft": 0, "trustedDevices": 0}
    assert "accessToken" in login(APIClient(), user.email)  # not enforced before confirmation


def test_confirm_turns_totp_on_issues_ten_codes_ends_other_sessions_and_mails(db):
    user = UserFactory()
    other = login(APIClient(), user.email)
    client = bearer_for(user)
    secret = client.post(f"{MFA}/totp/setup").json()["secret"]
    wrong = client.post(f"{MFA}/totp/confirm", {"code": "000000" if code_at(secret) != "000000" else "111111"},
                        format="json")
    error_of(wrong, 400, "invalid_mfa_code")
    assert TotpDevice.objects.get(user=user).confirmed_at is None
    mail.outbox.clear()
    confirm = client.post(f"{MFA}/totp/confirm", {"code": code_at(secret)}, format="json")
    assert confirm.status_code == 200, confirm.content
    codes = confirm.json()["recoveryCodes"]
    assert len(codes) == 10 == len(set(codes))
    assert not any(code in "".join(RecoveryCode.objects.values_list("code_hash", flat=True)) for code in codes)
    assert client.get(MFA).json() == {"totp": True, "passkeys": 0, "recoveryCodesLeft": 10, "trustedDevices": 0}
    error_of(bearer(other).get("/api/v1/auth/me"), 401)  # signed in with one factor: ended
    assert client.get("/api/v1/auth/me").status_code == 200  # this session stays
    assert [m.to for m in mail.outbox] == [[user.email]] and "turned on" in mail.outbox[0].body
    assert AuditEvent.objects.filter(event=EventType.TOTP_ENABLED, actor_id=user.pk).count() == 1


def test_a_second_setup_while_on_is_a_conflict_and_confirm_without_setup_too(db):
    user = UserFactory()
    client = bearer_for(user)
    error_of(client.post(f"{MFA}/totp/confirm", {"code": "123456"}, format="json"), 409, "totp_not_set_up")
    enrol(user, client)
    error_of(client.post(f"{MFA}/totp/setup"), 409, "totp_already_enabled")


def test_setup_and_removal_need_a_fresh_session(db):
    user = UserFactory()
    client = bearer_for(user)
    enrol(user, client)
    DeviceSession.objects.filter(user=user).update(reauthenticated_at=timezone.now() - timedelta(hours=1))
    error_of(client.delete(f"{MFA}/totp"), 403, "reauthentication_required")
    error_of(client.post(f"{MFA}/recovery-codes"), 403, "reauthentication_required")
    assert TotpDevice.objects.filter(user=user).exists()


# --- the login's second step ---------------------------------------------------------------------

def test_login_of_a_user_with_totp_answers_mfa_required_and_nothing_else(db):
    user = UserFactory()
    secret, _ = enrol(user)
    before = DeviceSession.objects.filter(user=user).count()
    client = APIClient()
    response = login_attempt(client, user.email)
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    body = response.json()
    assert set(body) == {"mfaRequired", "mfaToken", "methods", "expiresIn"}
    assert body["mfaRequired"] is True and body["methods"] == ["totp", "recovery_code"] and body["expiresIn"] == 300
    assert DeviceSession.objects.filter(user=user).count() == before  # no session row
    assert not response.cookies  # no session or cookie-cache cookie
    assert MfaChallenge.objects.get(user=user).token_hash != body["mfaToken"]  # stored hashed
    # The mfaToken is no credential anywhere else.
    error_of(bearer(body["mfaToken"]).get("/api/v1/auth/me"), 401)
    error_of(client.post("/api/v1/auth/refresh", {"refreshToken": body["mfaToken"]}, format="json"), 401)

    done = client.post(VERIFY, {"mfaToken": body["mfaToken"], "code": code_at(secret)}, format="json")
    assert done.status_code == 200, done.content
    pair = done.json()
    assert {"accessToken", "refreshToken", "deviceToken", "session", "user"} <= set(pair)
    assert "trustedDeviceToken" not in pair
    assert access_token_verify(pair["accessToken"])["amr"] == ["pwd", "otp", "mfa"] == pair["session"]["amr"]
    assert bearer(pair).get("/api/v1/auth/me").status_code == 200
    # Single-use.
    error_of(client.post(VERIFY, {"mfaToken": body["mfaToken"], "code": code_at(secret, 1)}, format="json"),
             401, "mfa_token_invalid")


def test_a_totp_code_is_accepted_once_and_never_an_older_one(db):
    user = UserFactory()
    secret, _ = enrol(user)  # spent the code of the step before now
    client = APIClient()
    token = password_step(client, user)["mfaToken"]
    error_of(client.post(VERIFY, {"mfaToken": token, "code": code_at(secret, -1)}, format="json"),
             401, "invalid_mfa_code")  # the confirmation's code: replay
    code = code_at(secret)
    assert client.post(VERIFY, {"mfaToken": token, "code": code}, format="json").status_code == 200
    token = password_step(client, user)["mfaToken"]
    error_of(client.post(VERIFY, {"mfaToken": token, "code": code}, format="json"),
             401, "invalid_mfa_code")  # the same code again
    assert client.post(VERIFY, {"mfaToken": token, "code": code_at(secret, 1)}, format="json").status_code == 200


def test_two_steps_of_drift_are_refused(db):
    user = UserFactory()
    secret, _ = enrol(user)
    client = APIClient()
    token = password_step(client, user)["mfaToken"]
    away_from_step_end()
    error_of(client.post(VERIFY, {"mfaToken": token, "code": code_at(secret, 2)}, format="json"),
             401, "invalid_mfa_code")


def test_five_wrong_codes_kill_the_mfa_token(db):
    user = UserFactory()
    secret, _ = enrol(user)
    client = APIClient()
    token = password_step(client, user)["mfaToken"]
    wrong = "000000" if code_at(secret) != "000000" else "111111"
    for _ in range(5):
        error_of(client.post(VERIFY, {"mfaToken": token, "code": wrong}, format="json"), 401, "invalid_mfa_code")
    error_of(client.post(VERIFY, {"mfaToken": token, "code": code_at(secret)}, format="json"),
             401, "mfa_token_invalid")
    assert AuditEvent.objects.filter(event=EventType.MFA_FAILED, subject_id=user.pk).count() == 6
    assert not any("otp" in amr for amr in DeviceSession.objects.filter(user=user).values_list("amr", flat=True))


def test_an_expired_mfa_token_is_refused(db):
    user = UserFactory()
    secret, _ = enrol(user)
    client = APIClient()
    token = password_step(client, user)["mfaToken"]
    MfaChallenge.objects.filter(user=user).update(expires_at=timezone.now() - timedelta(seconds=1))
    error_of(client.post(VERIFY, {"mfaToken": token, "code": code_at(secret)}, format="json"),
             401, "mfa_token_invalid")


def test_ten_wrong_codes_lock_the_second_factor_not_the_password(db):
    user = UserFactory()
    secret, _ = enrol(user)
    client = APIClient()
    wrong = "000000" if code_at(secret) not in ("000000", code_at(secret, 1)) else "111111"
    mail.outbox.clear()
    for attempt in range(10):
        if attempt % 5 == 0:
            token = password_step(client, user)["mfaToken"]  # the password still works: its own counter
        error_of(client.post(VERIFY, {"mfaToken": token, "code": wrong}, format="json"), 401, "invalid_mfa_code")
    assert AuditEvent.objects.filter(event=EventType.MFA_LOCKED, subject_id=user.pk).count() == 1
    assert [m.to for m in mail.outbox] == [[user.email]] and "two-factor code" in mail.outbox[0].body
    token = password_step(client, user)["mfaToken"]  # django-axes counted nothing
    locked = client.post(VERIFY, {"mfaToken": token, "code": code_at(secret)}, format="json")
    error_of(locked, 429, "account_locked")
    assert int(locked["Retry-After"]) > 0
    # The mailed unlock link lifts it.
    from tests.support.mail import link_token
    unlock = APIClient().post("/api/v1/auth/unlock", {"token": link_token(mail.outbox[0])}, format="json")
    assert unlock.status_code == 200, unlock.content
    assert client.post(VERIFY, {"mfaToken": token, "code": code_at(secret)}, format="json").status_code == 200


def test_bad_input_on_verify_is_a_clear_4xx(db):
    user = UserFactory()
    secret, _ = enrol(user)
    client = APIClient()
    token = password_step(client, user)["mfaToken"]
    error_of(client.post(VERIFY, {"mfaToken": token}, format="json"), 400, "validation_error")
    error_of(client.post(VERIFY, {"mfaToken": token, "code": "123456", "recoveryCode": "abcde-fghij"},
                         format="json"), 400, "validation_error")
    error_of(client.post(VERIFY, {"code": "123456"}, format="json"), 400, "validation_error")
    error_of(client.post(VERIFY, {"mfaToken": 5, "code": "123456"}, format="json"), 400, "validation_error")
    error_of(client.post(VERIFY, {"mfaToken": token, "code": ["1"]}, format="json"), 400, "validation_error")
    error_of(client.post(VERIFY, {"mfaToken": "nope", "code": "123456"}, format="json"), 401, "mfa_token_invalid")
    error_of(client.post(VERIFY, {"mfaToken": token, "code": "12345٦"}, format="json"), 400, "validation_error")
    error_of(client.post(VERIFY, {"mfaToken": token, "code": "12345"}, format="json"), 400, "validation_error")
    error_of(client.post(VERIFY, {"mfaToken": token, "recoveryCode": "no!"}, format="json"), 400, "validation_error")
    assert MfaChallenge.objects.get(user=user).failures == 0  # shapes that can never be right are not guesses
    error_of(client.post(VERIFY, "not json", content_type="text/plain"), 415)
    # Nothing was spent by the malformed ones: the challenge still answers.
    assert client.post(VERIFY, {"mfaToken": token, "code": code_at(secret)}, format="json").status_code == 200


# --- recovery codes ------------------------------------------------------------------------------

def test_a_recovery_code_signs_in_once_and_the_count_goes_down(db):
    user = UserFactory()
    _, codes = enrol(user)
    client = APIClient()
    token = password_step(client, user)["mfaToken"]
    done = client.post(VERIFY, {"mfaToken": token, "recoveryCode": codes[0].upper()}, format="json")
    assert done.status_code == 200, done.content
    assert done.json()["session"]["amr"] == ["pwd", "otp", "mfa"]
    assert bearer(done.json()).get(MFA).json()["recoveryCodesLeft"] == 9
    token = password_step(client, user)["mfaToken"]
    error_of(client.post(VERIFY, {"mfaToken": token, "recoveryCode": codes[0]}, format="json"),
             401, "invalid_mfa_code")


def test_new_recovery_codes_end_the_old_ones(db):
    user = UserFactory()
    _, old = enrol(user)
    fresh = bearer_for(user).post(f"{MFA}/recovery-codes")
    assert fresh.status_code == 200 and "no-store" in fresh["Cache-Control"]
    new = fresh.json()["recoveryCodes"]
    assert len(new) == 10 and not set(new) & set(old)
    client = APIClient()
    token = password_step(client, user)["mfaToken"]
    error_of(client.post(VERIFY, {"mfaToken": token, "recoveryCode": old[1]}, format="json"), 401, "invalid_mfa_code")
    assert client.post(VERIFY, {"mfaToken": token, "recoveryCode": new[1]}, format="json").status_code == 200


def test_running_low_on_recovery_codes_mails_a_warning(db):
    user = UserFactory()
    _, codes = enrol(user)
    keep = {_recovery_hash(user.pk, code) for code in codes[:4]}
    RecoveryCode.objects.filter(user=user).exclude(code_hash__in=keep).update(used_at=timezone.now())
    mail.outbox.clear()
    client = APIClient()
    token = password_step(client, user)["mfaToken"]
    assert client.post(VERIFY, {"mfaToken": token, "recoveryCode": codes[0]}, format="json").status_code == 200
    warning = [m for m in mail.outbox if m.to == [user.email] and "recovery codes" in m.subject]
    assert len(warning) == 1 and "3 recovery codes left" in warning[0].body


# --- trusted devices -----------------------------------------------------------------------------

def test_a_trusted_device_skips_the_code_for_its_user_only_until_the_password_changes(db):
    user, stranger = UserFactory(), UserFactory()
    secret, _ = enrol(user)
    enrol(stranger)
    client = APIClient()
    token = password_step(client, user, deviceName="Nia's iPhone")["mfaToken"]
    done = client.post(VERIFY, {"mfaToken": token, "code": code_at(secret), "trustDevice": True}, format="json").json()
    trusted = done["trustedDeviceToken"]
    assert TrustedDevice.objects.get(user=user).token_hash != trusted
    again = login(client, user.email, trustedDeviceToken=trusted)
    assert "accessToken" in again and again["session"]["amr"] == ["pwd"]
    # Another user's login with it still needs the code (and the refusal is audited).
    password_step(client, stranger, trustedDeviceToken=trusted)
    assert AuditEvent.objects.filter(event=EventType.TRUSTED_DEVICE_REFUSED, subject_id=stranger.pk,
                                     context__reason="other_user").exists()
    # Listed, and ended by a password change.
    listed = bearer(again).get(f"{MFA}/trusted-devices").json()["trustedDevices"]
    assert [d["label"] for d in listed] == ["Nia's iPhone"]
    changed = bearer(again).post("/api/v1/auth/change-password",
                                 {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}, format="json")
    assert changed.status_code == 204
    response = login_attempt(client, user.email, NEW_PASSWORD, trustedDeviceToken=trusted)
    assert response.json().get("mfaRequired") is True


def test_a_trusted_device_can_be_removed_and_not_by_someone_else(db):
    user, other = UserFactory(), UserFactory()
    secret, _ = enrol(user)
    client = APIClient()
    token = password_step(client, user)["mfaToken"]
    done = client.post(VERIFY, {"mfaToken": token, "code": code_at(secret), "trustDevice": True}, format="json").json()
    row = TrustedDevice.objects.get(user=user)
    error_of(bearer_for(other).delete(f"{MFA}/trusted-devices/{row.pk}"), 404, "not_found")
    assert bearer(done).delete(f"{MFA}/trusted-devices/{row.pk}").status_code == 204
    assert password_step(client, user, trustedDeviceToken=done["trustedDeviceToken"])["mfaRequired"]
    error_of(bearer(done).delete(f"{MFA}/trusted-devices/{row.pk}"), 404, "not_found")


def test_turning_totp_off_ends_codes_and_trusted_devices_and_mails(db):
    user = UserFactory()
    secret, _ = enrol(user)
    client = APIClient()
    token = password_step(client, user)["mfaToken"]
    done = client.post(VERIFY, {"mfaToken": token, "code": code_at(secret), "trustDevice": True}, format="json").json()
    mail.outbox.clear()
    assert bearer(done).delete(f"{MFA}/totp").status_code == 204
    assert not TotpDevice.objects.filter(user=user).exists() and not RecoveryCode.objects.filter(user=user).exists()
    assert TrustedDevice.objects.get(user=user).revoked_at is not None
    assert [m.to for m in mail.outbox] == [[user.email]] and "turned off" in mail.outbox[0].body
    assert "accessToken" in login(client, user.email)  # one factor again
    error_of(bearer(done).delete(f"{MFA}/totp"), 409, "mfa_not_enabled")


# --- the rest of the account ---------------------------------------------------------------------

def test_reset_password_never_signs_in_and_the_next_login_still_needs_the_code(db):
    user = UserFactory()
    enrol(user)
    APIClient().post("/api/v1/auth/forgot-password", {"email": user.email}, format="json")
    from tests.support.mail import last_mail_to, link_token
    token = link_token(last_mail_to(user.email))
    reset = APIClient().post("/api/v1/auth/reset-password", {"token": token, "password": NEW_PASSWORD}, format="json")
    assert reset.status_code == 204 and not reset.content
    assert login_attempt(APIClient(), user.email, NEW_PASSWORD).json()["mfaRequired"] is True


def test_reauthenticate_takes_a_totp_code(db):
    user = UserFactory()
    secret, _ = enrol(user)
    client = bearer_for(user)
    DeviceSession.objects.filter(user=user).update(reauthenticated_at=timezone.now() - timedelta(hours=1))
    wrong = "000000" if code_at(secret) != "000000" else "111111"
    error_of(client.post("/api/v1/auth/reauthenticate", {"code": wrong}, format="json"), 401, "invalid_mfa_code")
    code = code_at(secret)
    ok = client.post("/api/v1/auth/reauthenticate", {"code": code}, format="json")
    assert ok.status_code == 200, ok.content
    error_of(client.post("/api/v1/auth/reauthenticate", {"code": code}, format="json"),
             401, "invalid_mfa_code")  # spent
    error_of(client.post("/api/v1/auth/reauthenticate", {"code": "123456", "password": PASSWORD}, format="json"),
             400, "validation_error")
    error_of(bearer_for(UserFactory()).post("/api/v1/auth/reauthenticate", {"code": "123456"}, format="json"),
             409, "mfa_not_enabled")


def test_a_password_change_while_a_challenge_waits_kills_it(db):
    user = UserFactory()
    secret, _ = enrol(user)
    client = APIClient()
    token = password_step(client, user)["mfaToken"]
    changed = bearer_for(user).post("/api/v1/auth/change-password",
                                    {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}, format="json")
    assert changed.status_code == 204
    error_of(client.post(VERIFY, {"mfaToken": token, "code": code_at(secret)}, format="json"),
             401, "mfa_token_invalid")


def test_every_step_is_audited(db):
    user = UserFactory()
    secret, codes = enrol(user)
    client = APIClient()
    token = password_step(client, user)["mfaToken"]
    client.post(VERIFY, {"mfaToken": token, "code": code_at(secret), "trustDevice": True}, format="json")
    names = set(AuditEvent.objects.filter(actor_id=user.pk).values_list("event", flat=True)) | \
        set(AuditEvent.objects.filter(subject_id=user.pk).values_list("event", flat=True))
    assert {EventType.TOTP_SETUP_STARTED, EventType.TOTP_ENABLED, EventType.MFA_CHALLENGED, EventType.MFA_VERIFIED,
            EventType.TRUSTED_DEVICE_ADDED, EventType.LOGIN_SUCCEEDED} <= names


def test_second_factor_results_are_counted_in_the_metrics(db):
    from prometheus_client import REGISTRY

    def count(method, outcome):
        return REGISTRY.get_sample_value("mana_auth_mfa_total", {"method": method, "outcome": outcome}) or 0

    user = UserFactory()
    secret, _ = enrol(user)
    ok, bad = count("totp", "success"), count("totp", "invalid_code")
    client = APIClient()
    token = password_step(client, user)["mfaToken"]
    wrong = "000000" if code_at(secret) != "000000" else "111111"
    client.post(VERIFY, {"mfaToken": token, "code": wrong}, format="json")
    client.post(VERIFY, {"mfaToken": token, "code": code_at(secret)}, format="json")
    assert (count("totp", "success"), count("totp", "invalid_code")) == (ok + 1, bad + 1)

"""Bad input on every auth endpoint: a 4xx in the one error envelope, never a 5xx, never a row.

Each body endpoint gets a body that *would* succeed (proved by ``test_valid_body_changes_state``),
spoiled one way at a time, so "nothing changed" means the refusal stopped real work. Bodies are
sent as raw bytes through Django's test client so malformed bytes reach the server unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import urlencode

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts import services as account_services
from accounts.models import AccountToken, User
from audit.models import AuditEvent
from flows import email_change
from mfa.models import MfaChallenge, RecoveryCode, TotpDevice, TrustedDevice
from mfa.services import totp_setup_start
from notifications.models import OutboxMessage
from sessions_app.models import DeviceSession, SpentRefreshToken
from tests.factories import PASSWORD, UserFactory
from tests.mfa.support import code_at, enrol, password_step
from tests.support.auth import login
from tests.support.errors import error_of
from tests.support.mail import last_mail_to, link_token

AUTH = "/api/v1/auth/"
NEW_PASSWORD = "brand-new-password-1"
MIB = 1024 * 1024


# --- the endpoints --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    authed: bool
    fields: dict = field(default_factory=dict)  # wire name -> "str" | "bool"
    optional: tuple = ()  # may be left out
    blank_ok: tuple = ()  # "" is a valid value

    @property
    def url(self):
        return AUTH + self.path


BODY_ENDPOINTS = [
    Endpoint("register", "POST", "register", False, {"email": "str", "password": "str", "name": "str"},
             optional=("name",), blank_ok=("name",)),
    # password: required for an account that never signed in (400 password_required, not a shape error)
    Endpoint("verify-email", "POST", "verify-email", False, {"token": "str", "password": "str"},
             optional=("password",)),
    Endpoint("resend-verification", "POST", "resend-verification", False, {"email": "str"}),
    Endpoint("login", "POST", "login", False,
             {"email": "str", "password": "str", "rememberMe": "bool", "deviceId": "str", "deviceName": "str"},
             optional=("rememberMe", "deviceId", "deviceName"), blank_ok=("deviceId", "deviceName")),
    Endpoint("refresh", "POST", "refresh", False, {"refreshToken": "str"}),
    Endpoint("me-patch", "PATCH", "me", True, {"name": "str"}, blank_ok=("name",)),
    Endpoint("forgot-password", "POST", "forgot-password", False, {"email": "str"}),
    Endpoint("reset-password", "POST", "reset-password", False, {"token": "str", "password": "str"}),
    Endpoint("change-password", "POST", "change-password", True, {"currentPassword": "str", "newPassword": "str"}),
    Endpoint("reauthenticate", "POST", "reauthenticate", True, {"password": "str"}),
    # Email change (issue 4 step-up; documented extensions)
    Endpoint("change-email", "POST", "change-email", True, {"newEmail": "str", "password": "str"}),
    Endpoint("confirm-email-change", "POST", "confirm-email-change", False, {"token": "str"}),
    Endpoint("revert-email-change", "POST", "revert-email-change", False, {"token": "str"}),
    # Two-factor (issue 11)
    Endpoint("mfa-totp-confirm", "POST", "mfa/totp/confirm", True, {"code": "str"}),
    Endpoint("mfa-verify", "POST", "mfa/verify", False, {"mfaToken": "str", "code": "str", "trustDevice": "bool"},
             optional=("code", "trustDevice")),
]
BODYLESS_ENDPOINTS = [
    Endpoint("logout", "POST", "logout", True),
    Endpoint("me-get", "GET", "me", True),
    Endpoint("sessions-active", "GET", "sessions/active", True),
    Endpoint("session-revoke", "DELETE", "sessions/{other_session}", True),
    Endpoint("sessions-revoke-others", "POST", "sessions/revoke-others", True),
    Endpoint("mfa-get", "GET", "mfa", True),
    Endpoint("mfa-trusted-devices", "GET", "mfa/trusted-devices", True),
]
AUTHED_ENDPOINTS = [e for e in BODY_ENDPOINTS + BODYLESS_ENDPOINTS if e.authed]
BY_NAME = {e.name: e for e in BODY_ENDPOINTS + BODYLESS_ENDPOINTS}


def ids(endpoints):
    return [e.name for e in endpoints]


# --- the world every case starts from --------------------------------------------------------------

@dataclass
class World:
    user: User
    tokens: dict  # the session the authenticated requests use
    other_session: str  # a second live session of the same user
    unverified: User
    verify_token: str
    reset_token: str
    email_change_token: str
    email_revert_token: str
    totp_secret: str  # a TOTP setup of ``user`` waiting for its first code
    mfa_secret: str  # the authenticator of another user, signed in with a password, waiting for the code
    mfa_token: str

    def valid_body(self, endpoint: Endpoint) -> dict:
        return {
            "register": {"email": "fresh@example.com", "password": NEW_PASSWORD, "name": "Fresh"},
            "verify-email": {"token": self.verify_token, "password": NEW_PASSWORD},
            "resend-verification": {"email": self.unverified.email},
            "login": {"email": self.user.email, "password": PASSWORD, "rememberMe": True, "deviceId": "dev-1",
                      "deviceName": "Phone"},
            "refresh": {"refreshToken": self.tokens["refreshToken"]},
            "me-patch": {"name": "Renamed"},
            "forgot-password": {"email": self.user.email},
            "reset-password": {"token": self.reset_token, "password": NEW_PASSWORD},
            "change-password": {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD},
            "reauthenticate": {"password": PASSWORD},
            "change-email": {"newEmail": "moved@example.com", "password": PASSWORD},
            "confirm-email-change": {"token": self.email_change_token},
            "revert-email-change": {"token": self.email_revert_token},
            "mfa-totp-confirm": {"code": code_at(self.totp_secret)},
            "mfa-verify": {"mfaToken": self.mfa_token, "code": code_at(self.mfa_secret), "trustDevice": True},
        }[endpoint.name]

    def url(self, endpoint: Endpoint) -> str:
        return endpoint.url.format(other_session=self.other_session)

    def auth(self, endpoint: Endpoint) -> dict:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.tokens['accessToken']}"} if endpoint.authed else {}


@pytest.fixture
def world(api, user):
    tokens = login(api, user.email)
    other = login(api, user.email, deviceId="other-device")
    unverified = UserFactory(email_verified_at=None)
    account_services.verification_resend(email=unverified.email)
    account_services.password_forgot(email=user.email)
    reset_token = link_token(last_mail_to(user.email))
    # A second account moved to another address: the link mailed to its old one can undo that.
    moved = UserFactory(email="before-move@example.com")
    email_change.email_change_request(user=moved, session=None, new_email="after-move@example.com",
                                          password=PASSWORD)
    email_change.email_change_confirm(token=link_token(last_mail_to("after-move@example.com")))
    email_revert_token = link_token(last_mail_to("before-move@example.com"))
    email_change.email_change_request(user=user, session=None, new_email="pending@example.com",
                                          password=PASSWORD)
    totp_secret = totp_setup_start(user=user).secret
    mfa_user = UserFactory()
    mfa_secret, _ = enrol(mfa_user)
    mfa_token = password_step(APIClient(), mfa_user)["mfaToken"]
    return World(user=user, tokens=tokens, other_session=other["session"]["id"], unverified=unverified,
                 verify_token=link_token(last_mail_to(unverified.email)), reset_token=reset_token,
                 email_change_token=link_token(last_mail_to("pending@example.com")),
                 email_revert_token=email_revert_token, totp_secret=totp_secret, mfa_secret=mfa_secret,
                 mfa_token=mfa_token)


@pytest.fixture
def client():
    return Client()


def db_state(*, audit=True) -> dict:
    """Everything a flow could write: row counts plus the columns the flows change."""
    state = {
        "users": list(User.objects.order_by("pk").values_list("pk", "email", "name", "password", "email_verified_at")),
        "tokens": list(AccountToken.objects.order_by("pk").values_list("pk", "used_at")),
        "sessions": list(DeviceSession.objects.order_by("pk").values_list(
            "pk", "revoked_at", "refresh_token_hash", "refresh_secret_hash", "reauthenticated_at", "remember_me")),
        "spent": SpentRefreshToken.objects.count(),
        "outbox": OutboxMessage.objects.count(),
        "totp": list(TotpDevice.objects.order_by("pk").values_list("pk", "confirmed_at", "last_step")),
        "challenges": list(MfaChallenge.objects.order_by("pk").values_list("pk", "used_at", "failures")),
        "recovery_codes_used": RecoveryCode.objects.filter(used_at__isnull=False).count(),
        "trusted_devices": TrustedDevice.objects.count(),
    }
    if audit:
        state["audit"] = AuditEvent.objects.count()
    return state


def send(client, world, endpoint, body: bytes | None, content_type="application/json", auth=True, **extra):
    headers = {**(world.auth(endpoint) if auth else {}), **extra}
    return client.generic(endpoint.method, world.url(endpoint), body or b"", content_type=content_type, **headers)


def raw(data) -> bytes:
    return json.dumps(data).encode()


# --- the baseline: the valid bodies really do change state -------------------------------------------

@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS + BODYLESS_ENDPOINTS, ids=ids(BODY_ENDPOINTS + BODYLESS_ENDPOINTS))
def test_valid_request_succeeds(client, world, endpoint):
    """The un-spoiled request succeeds, and (except for the reads) changes what db_state sees, so the
    'nothing changed' checks below are meaningful."""
    before = db_state(audit=False)
    body = raw(world.valid_body(endpoint)) if endpoint.fields else None
    response = send(client, world, endpoint, body)
    assert 200 <= response.status_code < 300, response.content
    if endpoint.name not in ("me-get", "sessions-active", "mfa-get", "mfa-trusted-devices"):
        assert db_state(audit=False) != before


# --- per-field bad values -----------------------------------------------------------------------------

SURROGATE = "\x00SURROGATE\x00"  # replaced in the raw bytes by the JSON escape of a lone surrogate
STR_BAD = {
    "int": 123,
    "float": 1.5,
    "list": ["a"],
    "object": {"a": "b"},
    "null": None,
    "bool": True,
    "nested": [[[[[[[[[["deep"]]]]]]]]]],
    "empty": "",
    "huge": "a" * 9_988 + "@example.com",  # 10,000 characters
    "nul": "abc\x00def@example.com",
    "surrogate": SURROGATE,
}
BOOL_BAD = {"int": 1, "zero": 0, "string": "true", "list": [True], "object": {}, "null": None}


def field_params():
    return [pytest.param(e, name, id=f"{e.name}-{name}") for e in BODY_ENDPOINTS for name in e.fields]


def bad_values(endpoint, name):
    values = dict(STR_BAD if endpoint.fields[name] == "str" else BOOL_BAD)
    if name in endpoint.blank_ok:
        values.pop("empty", None)
    if name not in endpoint.optional:
        values["missing"] = KeyError
    return values


def spoil(body: dict, name: str, value) -> bytes:
    body = dict(body)
    if value is KeyError:
        del body[name]
        return raw(body)
    body[name] = value
    data = raw(body)
    if value == SURROGATE:
        data = data.replace(raw(SURROGATE), b'"ab\\ud800cd"')  # a lone surrogate, as JSON allows it
        assert b"\\ud800" in data and b"SURROGATE" not in data
    return data


@pytest.mark.parametrize(("endpoint", "name"), field_params())
def test_bad_field_is_a_validation_error(client, world, subtests, endpoint, name):
    for label, value in bad_values(endpoint, name).items():
        with subtests.test(label):
            before = db_state()
            response = send(client, world, endpoint, spoil(world.valid_body(endpoint), name, value))
            error_of(response, 400, "validation_error", fields=[name])
            assert db_state() == before


UNICODE = {
    "emoji": "Zoë 😀👩‍👩‍👧 ok",
    "rtl": "\u202eمرحبا שלום\u202c",
    "combining": "e\u0301\u0301\u0301 Z\u0351\u0352\u0353",
}


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS, ids=ids(BODY_ENDPOINTS))
def test_unicode_is_accepted_or_refused_cleanly(client, world, subtests, endpoint):
    """Valid Unicode in any string field: a success, or a 4xx in the envelope that wrote no data."""
    for name, kind in endpoint.fields.items():
        for label, value in UNICODE.items() if kind == "str" else ():
            with subtests.test(f"{name}-{label}"):
                before = db_state(audit=False)
                response = send(client, world, endpoint, spoil(world.valid_body(endpoint), name, value))
                assert response.status_code < 500, response.content
                if response.status_code >= 400:
                    error_of(response, response.status_code)
                    assert db_state(audit=False) == before


def test_unicode_round_trips(client, world):
    # Right-to-left text itself, not the override around it: names are one line without bidirectional
    # controls (issue 14: they can make a name in a mail display as something else).
    name = UNICODE["emoji"] + UNICODE["rtl"].strip("\u202e\u202c") + UNICODE["combining"]
    me = BY_NAME["me-patch"]
    refused = send(client, world, me, raw({"name": UNICODE["rtl"]}))
    assert refused.status_code == 400 and list(refused.json()["error"]["fields"]) == ["name"]
    response = send(client, world, me, raw({"name": name}))
    assert response.status_code == 200 and response.json()["name"] == name
    world.user.refresh_from_db()
    assert world.user.name == name
    pair = login(APIClient(), world.user.email, deviceName=name[:100], deviceId="📱")
    assert pair["session"]["deviceName"] == name[:100] and pair["session"]["deviceId"] == "📱"


# --- whole-body problems -----------------------------------------------------------------------------

MALFORMED = {
    "truncated": b'{"email": ',
    "single-quotes": b"{'email': 'a@example.com'}",
    "trailing-comma": b'{"email": "a@example.com",}',
    "trailing-garbage": b'{"email": "a@example.com"} x',
    "invalid-utf8": b'{"email": "\xff\xfe"}',
    "nan": b'{"email": NaN}',
    "deep-array": b"[" * 100_000,
    "deep-object": b'{"a":' * 50_000,
    "huge-int": b'{"email": ' + b"9" * 5_000 + b"}",
}
NOT_AN_OBJECT = {
    "array": b'["a@example.com"]',
    "empty-array": b"[]",
    "string": b'"a@example.com"',
    "surrogate-string": b'"\\ud800"',
    "number": b"42",
    "null": b"null",
    "bool": b"true",
}


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS, ids=ids(BODY_ENDPOINTS))
def test_malformed_json_is_refused(client, world, subtests, endpoint):
    for label, body in MALFORMED.items():
        with subtests.test(label):
            before = db_state()
            error_of(send(client, world, endpoint, body), 400, "malformed_request")
            assert db_state() == before


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS, ids=ids(BODY_ENDPOINTS))
def test_json_that_is_not_an_object_is_refused(client, world, subtests, endpoint):
    for label, body in NOT_AN_OBJECT.items():
        with subtests.test(label):
            before = db_state()
            error_of(send(client, world, endpoint, body), 400, "validation_error", fields=["nonFieldErrors"])
            assert db_state() == before


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS, ids=ids(BODY_ENDPOINTS))
def test_empty_body_lists_the_required_fields(client, world, endpoint):
    before = db_state()
    required = [n for n in endpoint.fields if n not in endpoint.optional]
    error_of(send(client, world, endpoint, b""), 400, "validation_error", fields=required)
    assert db_state() == before


def encode_as(content_type: str, body: dict) -> bytes:
    if content_type == "application/x-www-form-urlencoded":
        return urlencode(body).encode()
    if content_type.startswith("multipart/"):
        parts = (b'--xyz\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (k.encode(), str(v).encode())
                 for k, v in body.items())
        return b"".join(parts) + b"--xyz--\r\n"
    return raw(body)  # valid JSON, but not declared as JSON


NON_JSON_TYPES = ["application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz", "text/plain",
                  "application/xml", "application/jsonx", ""]


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS, ids=ids(BODY_ENDPOINTS))
def test_non_json_body_is_415(client, world, subtests, endpoint):
    for content_type in NON_JSON_TYPES:
        with subtests.test(content_type or "no-content-type"):
            before = db_state()
            data = encode_as(content_type, world.valid_body(endpoint))
            response = send(client, world, endpoint, data, content_type=content_type)
            error_of(response, 415, "unsupported_media_type")
            assert db_state() == before


def test_json_with_charset_and_odd_spelling_is_accepted(client, world):
    me = BY_NAME["me-patch"]
    response = send(client, world, me, raw({"name": "Ok"}), content_type="Application/JSON; charset=utf-8")
    assert response.status_code == 200 and response.json()["name"] == "Ok"
    response = send(client, world, me, '{"name": "Ü"}'.encode("utf-16"),
                    content_type="application/json; charset=utf-16")
    assert response.status_code == 200 and response.json()["name"] == "Ü"
    # A charset Python does not know is ignored, as Django does everywhere: the body is read as UTF-8.
    response = send(client, world, me, raw({"name": "Ç"}), content_type="application/json; charset=bogus")
    assert response.status_code == 200 and response.json()["name"] == "Ç"


def test_json_with_a_wrong_charset_is_refused(client, world, subtests):
    """Compression "charsets" (a zip bomb behind a small Content-Length) and wrong text encodings."""
    me = BY_NAME["me-patch"]
    for charset in ["bz2_codec", "zlib_codec", "utf-16", "utf-32"]:
        with subtests.test(charset):
            before = db_state()
            response = send(client, world, me, raw({"name": "Changed!"}),
                            content_type=f"application/json; charset={charset}")
            error_of(response, 400, "malformed_request")
            assert db_state() == before


# --- body size and Content-Length ----------------------------------------------------------------------

ALL_ENDPOINTS = BODY_ENDPOINTS + BODYLESS_ENDPOINTS


def big_body(endpoint, world) -> bytes:
    body = world.valid_body(endpoint) if endpoint.fields else {}
    body["padding"] = "x" * MIB
    return raw(body)


def small_body(endpoint, world) -> bytes:
    return raw(world.valid_body(endpoint)) if endpoint.fields else b"{}"


@pytest.mark.parametrize("endpoint", ALL_ENDPOINTS, ids=ids(ALL_ENDPOINTS))
def test_body_over_1_mib_is_413(client, world, subtests, endpoint):
    cases = {
        "honest-length": (big_body(endpoint, world), {}),
        # A Content-Length that claims more than 1 MiB is refused before anything is read.
        "claimed-length": (small_body(endpoint, world), {"CONTENT_LENGTH": str(MIB + 1)}),
        "claimed-huge-length": (small_body(endpoint, world), {"CONTENT_LENGTH": "9" * 40}),
    }
    for label, (body, extra) in cases.items():
        with subtests.test(label):
            before = db_state()
            error_of(send(client, world, endpoint, body, **extra), 413, "request_too_large")
            assert db_state() == before


def test_exactly_1_mib_is_not_413(client, world):
    me = BY_NAME["me-patch"]
    body = raw({"name": "Fits", "padding": ""})
    body = body.replace(b'"padding": ""', b'"padding": "' + b"x" * (MIB - len(body)) + b'"')
    assert len(body) == MIB
    response = send(client, world, me, body)
    assert response.status_code == 200 and response.json()["name"] == "Fits"


@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS, ids=ids(BODY_ENDPOINTS))
def test_declared_length_shorter_than_the_body_reads_only_what_was_declared(client, world, endpoint):
    """A Content-Length that understates an over-1-MiB body: only the declared bytes are read (here a
    cut-off JSON document), so the rest never reaches a parser."""
    before = db_state()
    response = send(client, world, endpoint, big_body(endpoint, world), CONTENT_LENGTH="20")
    error_of(response, 400, "malformed_request")
    assert db_state() == before


def test_body_without_content_length_is_not_read(client, world):
    """No Content-Length (a chunked upload): nothing is read, however much follows, so the 1 MiB
    limit cannot be dodged; the request is answered as one with an empty body."""
    before = db_state()
    response = send(client, world, BY_NAME["login"], big_body(BY_NAME["login"], world), CONTENT_LENGTH="")
    error_of(response, 400, "validation_error", fields=["email", "password"])
    assert db_state() == before


@pytest.mark.parametrize("endpoint", ALL_ENDPOINTS, ids=ids(ALL_ENDPOINTS))
def test_content_length_that_is_not_a_number_is_refused(client, world, subtests, endpoint):
    """Not a length at all: 400 malformed_request, never read as 0 and let through (Django's own
    reading) and never guessed at. The body sent is over 1 MiB."""
    for length in ["abc", "1e9", "-1", "+5", "1_0", " 12x", "0x10", "１２"]:
        with subtests.test(length):
            before = db_state()
            response = send(client, world, endpoint, big_body(endpoint, world), CONTENT_LENGTH=length)
            error_of(response, 400, "malformed_request")
            assert db_state() == before


# --- authentication ---------------------------------------------------------------------------------

def with_body(endpoint, world):
    return raw(world.valid_body(endpoint)) if endpoint.fields else None


def tampered(token: str) -> str:
    head, payload, signature = token.split(".")
    return f"{head}.{payload}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"


GARBAGE_BEARERS = {
    "word": "Bearer garbage",
    "empty": "Bearer",
    "two-parts": "Bearer a b",
    "jwt-alg-none": "Bearer eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.eyJzdWIiOiJ4In0.",
    "non-ascii": "Bearer \xff\xfe",
    "nul": "Bearer a\x00b",
    "huge": "Bearer " + "a" * 20_000,
}


@pytest.mark.parametrize("endpoint", AUTHED_ENDPOINTS, ids=ids(AUTHED_ENDPOINTS))
def test_bad_credentials_are_401(client, world, subtests, endpoint):
    cases = {
        **{f"missing-{k}": (v, "not_authenticated") for k, v in
           {"none": None, "basic": "Basic dXNlcjpwYXNz", "token": "Token abc"}.items()},
        **{f"garbage-{k}": (v, "invalid_token") for k, v in GARBAGE_BEARERS.items()},
        "tampered": (f"Bearer {tampered(world.tokens['accessToken'])}", "invalid_token"),
    }
    for label, (header, code) in cases.items():
        with subtests.test(label):
            before = db_state()
            extra = {"HTTP_AUTHORIZATION": header} if header else {}
            response = send(client, world, endpoint, with_body(endpoint, world), auth=False, **extra)
            error_of(response, 401, code)
            assert response["WWW-Authenticate"].startswith("Bearer")
            assert db_state() == before


@pytest.mark.parametrize("endpoint", AUTHED_ENDPOINTS, ids=ids(AUTHED_ENDPOINTS))
def test_authentication_comes_before_parsing(client, world, endpoint):
    """Without credentials a malformed body is not even read: 401, not 400."""
    response = send(client, world, endpoint, b"{not json", auth=False)
    error_of(response, 401, "not_authenticated")


def test_public_endpoints_ignore_a_garbage_bearer(client, world):
    login_ = BY_NAME["login"]
    response = send(client, world, login_, raw(world.valid_body(login_)), auth=False,
                    HTTP_AUTHORIZATION="Bearer garbage")
    assert response.status_code == 200


@pytest.mark.parametrize("endpoint", BODYLESS_ENDPOINTS, ids=ids(BODYLESS_ENDPOINTS))
def test_bodyless_endpoints_ignore_a_body(client, world, subtests, endpoint):
    """Endpoints that take no body do not read one: a stray body is neither parsed nor a 5xx."""
    cases = {"malformed": (b"{not json", "application/json"), "form": (b"a=b", "application/x-www-form-urlencoded"),
             "binary": (b"\xff\x00", "application/octet-stream")}
    for label, (body, content_type) in cases.items():
        with subtests.test(label):
            response = send(client, world, endpoint, body, content_type=content_type)
            assert 200 <= response.status_code < 300, response.content
            if endpoint.name in ("logout", "session-revoke"):
                return  # the first success ended the session it needed


# --- the session path parameter ---------------------------------------------------------------------

def test_revoking_a_session_that_is_not_there_is_404(client, world, subtests):
    for label, session_id in {
        "unknown-uuid": "00000000-0000-0000-0000-000000000000",
        "not-uuid": "not-a-uuid",
        "sql": "'; DROP TABLE sessions_app_devicesession; --",
        "nul": "%00",
        "emoji": "%F0%9F%98%80",
        "uuid-braces": "%7B00000000-0000-0000-0000-000000000000%7D",
    }.items():
        with subtests.test(label):
            before = db_state()
            response = client.delete(f"{AUTH}sessions/{session_id}", **world.auth(BY_NAME["me-get"]))
            error_of(response, 404, "not_found")
            assert db_state() == before


def test_revoking_another_users_session_is_404(client, world):
    stranger = UserFactory()
    theirs = login(APIClient(), stranger.email)["session"]["id"]
    before = db_state()
    response = client.delete(f"{AUTH}sessions/{theirs}", **world.auth(BY_NAME["me-get"]))
    error_of(response, 404, "not_found")
    assert db_state() == before


# --- URLs, methods and headers outside any endpoint ---------------------------------------------------

@pytest.mark.parametrize("path", [
    "/api/", "/api/v1/", "/api/v1/nope", "/api/v1/auth/nope", "/api/v1/auth/login/", "/api/v2/auth/login",
    "/api/v1/auth/sessions/", "/api/v1/auth/sessions/active/extra", "/.well-known/nope",
])
def test_unknown_api_url_is_404_envelope(client, subtests, path):
    for method in ["GET", "POST", "PUT", "DELETE"]:
        with subtests.test(method):
            response = client.generic(method, path, b"{}", content_type="application/json")
            error_of(response, 404, "not_found")


WRONG_METHODS = [
    ("GET", "register", False), ("PUT", "login", False), ("DELETE", "verify-email", False),
    ("GET", "refresh", False), ("PATCH", "forgot-password", False), ("GET", "reset-password", False),
    ("GET", "resend-verification", False), ("POST", "jwks", False),
    ("GET", "logout", True), ("POST", "me", True), ("PUT", "me", True),  # DELETE me: issue 4
    ("GET", "change-password", True), ("GET", "reauthenticate", True), ("POST", "sessions/active", True),
    ("GET", "sessions/revoke-others", True), ("GET", "sessions/{other_session}", True),
]


def test_wrong_method_is_405_envelope(client, world, subtests):
    for method, path, authed in WRONG_METHODS:
        with subtests.test(f"{method} {path}"):
            before = db_state()
            response = send(client, world, Endpoint("x", method, path, authed), b"{}")
            error_of(response, 405, "method_not_allowed")
            assert response["Allow"]
            assert db_state() == before


@pytest.mark.parametrize("path", ["/.well-known/jwks.json", "/api/v1/schema/"])
def test_wrong_method_on_public_documents_is_405_envelope(client, subtests, path):
    for method in ["POST", "PUT", "PATCH", "DELETE"]:
        with subtests.test(method):
            response = client.generic(method, path, b"{}", content_type="application/json")
            error_of(response, 405, "method_not_allowed")


def test_unacceptable_accept_header_is_406_envelope(client):
    error_of(client.get(f"{AUTH}jwks", HTTP_ACCEPT="text/html"), 406, "not_acceptable")


def test_schema_errors_are_json_too(client):
    error_of(client.get("/api/v1/schema/?format=xml"), 404, "not_found")
    error_of(client.get("/api/v1/schema/", HTTP_ACCEPT="text/html"), 406, "not_acceptable")
    error_of(client.post("/api/v1/schema/"), 405, "method_not_allowed")


def test_disallowed_host_is_400_envelope(client):
    error_of(client.get(f"{AUTH}jwks", HTTP_HOST="evil.example"), 400, "malformed_request")


def test_too_many_query_parameters_is_400_envelope(client, world):
    query = "&".join(f"a{i}=1" for i in range(1_100))
    response = client.get(f"{AUTH}me?{query}", **world.auth(BY_NAME["me-get"]))
    error_of(response, 400, "malformed_request")


def test_user_agent_with_nul_bytes_is_stored_without_them(client, world):
    """PostgreSQL refuses NUL in text; a User-Agent carrying one used to turn login into a 500."""
    response = client.post(f"{AUTH}login", raw(world.valid_body(BY_NAME["login"])), content_type="application/json",
                           HTTP_USER_AGENT="Agent\x00/1.0 " + "x" * 2_000)
    assert response.status_code == 200, response.content
    assert response.json()["session"]["userAgent"].startswith("Agent/1.0 ")
    assert len(response.json()["session"]["userAgent"]) == 512


def test_an_unexpected_bug_still_answers_in_the_envelope(world, monkeypatch):
    def boom(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(account_services, "user_update", boom)
    client = Client(raise_request_exception=False)
    response = send(client, world, BY_NAME["me-patch"], raw({"name": "x"}))
    error = error_of(response, 500, "server_error")
    assert "bug" not in error["message"]

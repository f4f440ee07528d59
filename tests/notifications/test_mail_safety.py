"""Issue 14, item 3: names and other text people choose reach mail only single-line, length-capped,
quoted where someone other than the recipient chose them, and never able to forge a header or carry
a working link (notifications/text.py). Names are checked where they are entered, too."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.core import mail
from django.db import transaction
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from core.crypto import encrypt_at_rest
from notifications.models import OutboxMessage
from notifications.services import PURPOSE, outbox_deliver, outbox_enqueue, render_mail
from notifications.text import (
    LINK_MAX,
    QUOTED_MAX,
    SUBJECT_MAX,
    TEXT_MAX,
    MailObject,
    mail_quote,
    mail_subject,
    mail_text,
)
from orgs import services as orgs
from orgs.models import Membership, Organization, OrgRole
from tests.conftest import last_mail_to, login
from tests.factories import PASSWORD, UserFactory
from tests.web.conftest import CHROME, page_login

# Names that try to break out of where they are printed.
CRLF = "Eve\r\nBcc: victim@example.com"
HEADER_LIKE = "Content-Type: text/html\r\n\r\n<a href=x>click</a>"
URL = "Support team: confirm at https://evil.example/login now"
LONG = "A" * 10_000
BIDI = "Eve\u202egnp.exe"
SEPARATORS = "Eve\u2028From the mana security team:\u2029reset your password"
TAB = "Eve\tBcc"
NUL = "Eve\x00x"
UNSAFE_NAMES = [CRLF, HEADER_LIKE, BIDI, SEPARATORS, TAB, NUL, "Eve\rBcc: x@example.com", "Eve\x1b[31m"]
CONTROLS = ("\r", "\n", "\x00", "\t", "\u2028", "\u2029", "\u202e", "\x1b")


# --- the text functions -----------------------------------------------------------------------------
@pytest.mark.parametrize("value", UNSAFE_NAMES + [URL, LONG])
def test_mail_text_is_one_capped_line_without_controls_or_working_links(value):
    text = mail_text(value)
    assert not any(ch in text for ch in CONTROLS)
    assert len(text) <= TEXT_MAX and "://" not in text


def test_mail_text_details():
    assert mail_text(CRLF) == "Eve Bcc: victim@example.com"
    assert mail_text(URL) == "Support team: confirm at https[:]//evil.example/login now"
    assert mail_text(LONG) == "A" * (TEXT_MAX - 1) + "…"
    assert mail_text("  Nia   O'Brien  ") == "Nia O'Brien"
    assert mail_text(None) == ""


def test_mail_quote_cannot_be_closed_from_inside():
    quoted = mail_quote('Eve” (support@mana.example) says: “reset')
    assert quoted == "“Eve' (support@mana.example) says: 'reset”"
    assert quoted.count("“") == 1 and quoted.count("”") == 1
    assert len(mail_quote(LONG)) == QUOTED_MAX + 2


def test_mail_subject_quotes_its_values_and_is_one_line():
    subject = mail_subject("You are invited to join {organization}", {"organization": CRLF})
    assert subject == "You are invited to join “Eve Bcc: victim@example.com”"
    assert len(mail_subject("Hello {x}", {"x": LONG})) <= SUBJECT_MAX
    assert mail_subject("Line one\r\nBcc: x@example.com") == "Line one Bcc: x@example.com"


def test_templates_read_data_never_call_methods(db):
    user = UserFactory(name=CRLF)
    wrapped = MailObject(user)
    assert wrapped.name == "Eve Bcc: victim@example.com" and wrapped.email == user.email
    for method in ("save", "delete", "set_password", "get_full_name"):
        with pytest.raises(AttributeError):
            getattr(wrapped, method)
    with pytest.raises(AttributeError):
        wrapped.name = "x"
    assert User.objects.get(pk=user.pk).name == CRLF  # untouched


def test_links_of_ours_keep_their_length_and_scheme():
    link = "https://auth.example/verify-email?token=" + "t" * 600
    body = render_mail("verify_email", {"user": None, "link": link, "hours": 24})
    assert link in body
    assert len(link) < LINK_MAX


# --- names are checked where they are entered ------------------------------------------------------------
@pytest.mark.parametrize("name", UNSAFE_NAMES + ["x" * 151, LONG])
def test_register_and_patch_me_refuse_unsafe_names(api, authed, name):
    response = api.post("/api/v1/auth/register", {"email": "new@example.com", "password": PASSWORD, "name": name},
                        format="json")
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["name"], name
    assert not User.objects.filter(email="new@example.com").exists()
    response = authed.patch("/api/v1/auth/me", {"name": name}, format="json")
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["name"], name


@pytest.mark.parametrize("name", [CRLF, SEPARATORS, BIDI, "x" * 101])
def test_organization_names_are_checked_on_create_rename_and_register_b2b(authed, name):
    response = authed.post("/api/v1/orgs/", {"name": name}, format="json")
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["name"]
    assert not Organization.objects.exists()
    response = APIClient().post("/api/v1/auth/register-b2b", {"email": "f@example.com", "password": PASSWORD,
                                                              "name": "Fay", "organizationName": name}, format="json")
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["organizationName"]


def test_device_names_are_checked_at_login(api, user):
    response = api.post("/api/v1/auth/login", {"email": user.email, "password": PASSWORD,
                                               "deviceName": "Phone\r\nBcc: x@example.com"}, format="json")
    assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["deviceName"]


def test_the_message_names_the_rule(authed):
    response = authed.patch("/api/v1/auth/me", {"name": "Eve\nAdmin"}, format="json")
    assert response.json()["error"]["fields"]["name"] == [
        "Must be a single line of text: no line breaks, tabs or other control characters."]


def test_names_that_are_fine_stay_as_they_are(authed):
    for name in ("Nia O'Brien", "José Müller-Lüdenscheidt", "李小龙", "محمد", "Zoë 👩‍👩‍👧", "Booking.com"):
        response = authed.patch("/api/v1/auth/me", {"name": name}, format="json")
        assert response.status_code == 200 and response.json()["name"] == name


@pytest.mark.parametrize("name", [CRLF, SEPARATORS, BIDI])
def test_pages_refuse_unsafe_names(user, name):
    client = Client(HTTP_USER_AGENT=CHROME)
    response = client.post("/register", {"email": "new@example.com", "password": PASSWORD, "name": name})
    assert response.status_code == 200 and "single line" in response.content.decode()
    assert not User.objects.filter(email="new@example.com").exists()
    assert page_login(client, user.email).status_code == 302
    response = client.post("/account/profile", {"name": name})
    assert "single line" in response.content.decode()
    assert User.objects.get(pk=user.pk).name != name
    response = client.post("/organizations", {"name": name})
    assert response.status_code == 400 and "single line" in response.content.decode()
    assert not Organization.objects.exists()


# --- what the mail says when a name got in some other way (admin, rows from before) --------------------------
def storable(name: str, length: int) -> str:
    """What the database can hold (PostgreSQL refuses NUL and enforces the column's length)."""
    return name.replace("\x00", "")[:length]


def _invite_from(inviter_name, org_name):
    inviter = UserFactory(email="inviter@example.com")
    User.objects.filter(pk=inviter.pk).update(name=storable(inviter_name, 150))  # as the admin or an old row could
    org = Organization.objects.create(name="Acme", slug="acme")
    Organization.objects.filter(pk=org.pk).update(name=storable(org_name, 100))
    Membership.objects.create(user=inviter, organization=org, role=OrgRole.OWNER)
    with transaction.atomic():
        orgs.invitation_create(user=User.objects.get(pk=inviter.pk), organization_id=org.pk,
                               email="guest@example.com", role=OrgRole.MEMBER)
    return last_mail_to("guest@example.com")


def _headers(message) -> dict:
    raw = message.message()
    return {name.lower(): raw.get_all(name) for name in raw.keys()}


@pytest.mark.parametrize("name", UNSAFE_NAMES + [URL, LONG])
def test_invitation_mail_quotes_the_inviter_and_the_organization(db, name):
    message = _invite_from(name, name)
    headers = _headers(message)
    assert message.to == ["guest@example.com"] and not message.bcc and not message.cc
    assert "bcc" not in headers and "cc" not in headers and headers["to"] == ["guest@example.com"]
    assert headers["content-type"] == ['text/plain; charset="utf-8"']
    subject = message.subject
    assert subject.startswith("You are invited to join “") and subject.endswith("”")
    assert "\n" not in subject and "\r" not in subject and len(subject) <= SUBJECT_MAX
    line = next(line for line in message.body.splitlines() if "invited you to join the organization" in line)
    inviter, organization = mail_quote(storable(name, 150)), mail_quote(storable(name, 100))
    assert line == f"{inviter} (inviter@example.com) invited you to join the organization {organization} as member."
    assert not any(ch in line for ch in CONTROLS) and "://" not in line.split("(")[0]
    assert len(line) < 2 * (QUOTED_MAX + 2) + 100


@pytest.mark.parametrize("name", [LONG, NUL, CRLF + LONG])
def test_any_text_in_the_context_is_made_safe_whatever_the_database_holds(db, name):
    """Values that no column of ours can hold (10,000 characters, NUL) still come out one capped line."""
    from types import SimpleNamespace

    with transaction.atomic():
        outbox_enqueue(kind="invitation", recipient="guest@example.com", subject="You are invited to join {organization}",
                       subject_values={"organization": name}, template="invitation",
                       context={"inviter": SimpleNamespace(name=name, email="inviter@example.com"),
                                "organization": SimpleNamespace(name=name), "role": name, "hours": 48,
                                "link": "http://localhost:8000/invitations/accept?token=t"})
    message = last_mail_to("guest@example.com")
    assert "bcc" not in _headers(message) and message.to == ["guest@example.com"]
    assert len(message.subject) <= SUBJECT_MAX and not any(ch in message.subject for ch in CONTROLS)
    line = next(line for line in message.body.splitlines() if "invited you to join the organization" in line)
    assert not any(ch in line for ch in CONTROLS) and len(line) <= 2 * (QUOTED_MAX + 2) + TEXT_MAX + 80
    assert line.startswith(mail_quote(name) + " (inviter@example.com) invited you to join the organization ")


def test_invitation_mail_with_a_url_in_the_name(db):
    message = _invite_from(URL, "Acme https://evil.example")
    assert "https://evil.example" not in message.body and "https://evil.example" not in message.subject
    assert "“Support team: confirm at https[:]//evil.example/login now” (inviter@example.com)" in message.body
    assert f"{settings.AUTH_PUBLIC_URL}/invitations/accept?token=" in message.body  # our own link still works
    assert "“Acme https[:]//evil.example”" in message.subject


def test_invitation_mail_is_plain_text_not_html_escaped(db):
    message = _invite_from("Nia O'Brien & Co", "Smith & Sons <GmbH>")
    assert "“Nia O'Brien & Co” (inviter@example.com)" in message.body
    assert "“Smith & Sons <GmbH>”" in message.body and "&amp;" not in message.body and "&#x27;" not in message.body


def test_a_greeting_uses_only_a_name_the_recipient_confirmed(api, db):
    """Anyone can register someone else's address with any name: the confirmation mail to that
    address does not print it."""
    response = api.post("/api/v1/auth/register", {"email": "victim@example.com", "password": PASSWORD,
                                                  "name": "Your account is suspended. Call 555-0100"}, format="json")
    assert response.status_code == 202
    message = last_mail_to("victim@example.com")
    assert message.body.startswith("Hello,\n") and "suspended" not in message.body
    verified = UserFactory(name="Nia O'Brien")
    with transaction.atomic():
        from accounts.services import password_forgot

        password_forgot(email=verified.email)
    assert last_mail_to(verified.email).body.startswith("Hello Nia O'Brien,\n")


def test_an_unverified_accounts_name_is_not_printed_in_its_mails(db):
    unverified = UserFactory(name="Click https://evil.example", email_verified_at=None)
    with transaction.atomic():
        from accounts.services import password_forgot

        password_forgot(email=unverified.email)
    body = last_mail_to(unverified.email).body
    assert body.startswith("Hello,\n") and "evil" not in body


def test_new_sign_in_mail_quotes_the_device_name():
    body = render_mail("new_sign_in", {"user": None, "ip": "203.0.113.9", "device": "Call us: https://evil.example",
                                       "browser": "Chrome 126\nIP: 10.0.0.1", "os": "Linux", "time": None,
                                       "sessions_link": "https://auth.example/account/sessions",
                                       "not_me_link": "https://auth.example/account/not-me?token=t"})
    assert "  Device:  “Call us: https[:]//evil.example”\n" in body
    assert "  Browser: Chrome 126 IP: 10.0.0.1 on Linux\n" in body  # cannot add a line of its own
    assert "https://auth.example/account/not-me?token=t" in body


def test_a_subject_queued_before_this_change_is_still_delivered_on_one_line(db, monkeypatch):
    monkeypatch.setattr("notifications.tasks.outbox_deliver.delay", lambda message_id: None)  # stays queued
    with transaction.atomic():
        message = outbox_enqueue(kind="legacy", recipient="a@example.com", subject="x", template="verify_email",
                                 context={"user": None, "link": "https://auth.example/x", "hours": 1})
    payload = json.dumps({"subject": "Invited to Acme\r\nBcc: victim@example.com", "body": "Hello"}).encode()
    OutboxMessage.objects.filter(pk=message.pk).update(
        payload_encrypted=encrypt_at_rest(payload, purpose=PURPOSE, aad=str(message.pk).encode()))
    mail.outbox.clear()
    assert outbox_deliver(message.pk) is True
    sent = mail.outbox[-1]
    assert sent.subject == "Invited to Acme Bcc: victim@example.com" and sent.to == ["a@example.com"]
    assert "bcc" not in _headers(sent)


def test_login_with_a_device_name_then_the_new_sign_in_mail(api, settings, db):
    """End to end through the API: an accepted device name (one line) is quoted in the alert."""
    user = UserFactory()
    login(api, user.email)  # the first device is known
    other = APIClient(REMOTE_ADDR="198.51.100.7", HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0")
    response = other.post("/api/v1/auth/login", {"email": user.email, "password": PASSWORD,
                                                 "deviceId": "d-2", "deviceName": "IT desk: visit https://evil.example"},
                          format="json")
    assert response.status_code == 200
    body = last_mail_to(user.email).body
    assert "“IT desk: visit https[:]//evil.example”" in body and "https://evil.example" not in body

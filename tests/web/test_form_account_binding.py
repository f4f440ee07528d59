"""Issue 14, item 1: several accounts in one browser. A form rendered for account A never acts as
account B after another tab switched accounts (web/form_account.py): every POST form carries the
account it was rendered for, a mismatch is refused with a page (409) and audited, and every change
of who is signed in rotates the CSRF token."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from accounts.models import User, hash_token
from audit.models import AuditEvent, EventType
from orgs.models import Invitation, Membership, Organization, OrgRole
from sessions_app.models import DeviceSession
from sessions_app.services import session_create
from tests.factories import PASSWORD, UserFactory
from tests.web.conftest import CHROME, page_login
from web.app_settings import app_settings as web_settings
from web.form_account import FIELD

TEMPLATES = Path(settings.BASE_DIR) / "templates"
POST_FORM = re.compile(r"<form\b[^>]*\bmethod=\"post\"[^>]*>(.*?)</form>", re.S | re.I)


# --- reading forms out of pages ------------------------------------------------------------------------
class _Forms(HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self._open: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self._open = {"action": attrs.get("action", ""), "method": (attrs.get("method") or "get").lower(),
                          "inputs": []}
            self.forms.append(self._open)
        elif self._open is not None and tag in ("input", "select", "textarea", "button"):
            if attrs.get("name"):
                self._open["inputs"].append((attrs["name"], attrs.get("value") or "", attrs.get("type", tag)))

    def handle_endtag(self, tag):
        if tag == "form":
            self._open = None


def post_forms(response) -> list[dict]:
    parser = _Forms()
    parser.feed(response.content.decode())
    return [form for form in parser.forms if form["method"] == "post"]


def form_data(response, action: str, **values) -> dict:
    """The fields of the POST form with ``action`` on the page, as a browser would send them."""
    forms = [form for form in post_forms(response) if form["action"] == action]
    assert forms, (action, [f["action"] for f in post_forms(response)])
    data: dict = {}
    for name, value, kind in forms[0]["inputs"]:
        if kind in ("submit", "button") or (kind == "checkbox" and name not in values):
            continue
        data.setdefault(name, value)
    data.update(values)
    return data


def carried(response) -> list[tuple[str, list[str]]]:
    """(action, values of the form_account field) of every POST form on a page."""
    return [(form["action"], [value for name, value, _ in form["inputs"] if name == FIELD])
            for form in post_forms(response)]


# --- the world ----------------------------------------------------------------------------------------
def _invite(org, email):
    now = timezone.now()
    return Invitation.objects.create(organization=org, email=email, role=OrgRole.MEMBER, token_hash=hash_token(email),
                                     created_at=now, expires_at=now + timedelta(days=2))


@pytest.fixture
def people(db):
    """``a`` (staff, owner of Acme with a member and a pending invitation, invited to Other),
    ``b`` and ``c`` (plain accounts)."""
    a = UserFactory(email="a@example.com", name="Ann", is_staff=True, is_superuser=True)
    b = UserFactory(email="b@example.com", name="Bob")
    c = UserFactory(email="c@example.com", name="Cy")
    acme = Organization.objects.create(name="Acme", slug="acme")
    Membership.objects.create(user=a, organization=acme, role=OrgRole.OWNER)
    Membership.objects.create(user=UserFactory(email="m@example.com"), organization=acme, role=OrgRole.MEMBER)
    other = Organization.objects.create(name="Other", slug="other")
    Membership.objects.create(user=UserFactory(email="o@example.com"), organization=other, role=OrgRole.OWNER)
    _invite(acme, "pending@example.com")
    _invite(other, a.email)
    return {"a": a, "b": b, "c": c, "acme": acme}


def browser():
    return Client(HTTP_USER_AGENT=CHROME)


def sign_in(client, user, *, add=False):
    assert page_login(client, user.email, **({"add": "1"} if add else {})).status_code == 302


def session_of(user) -> DeviceSession:
    """The browser's session of ``user`` (the one with a browser key)."""
    return DeviceSession.objects.filter(user=user, revoked_at__isnull=True, browser_key_hash__isnull=False
                                        ).exclude(browser_key_hash="").latest("created_at")


def switch_to(client, user):
    """What another tab does: open /accounts and switch (with the form that page rendered)."""
    page = client.get("/accounts")
    response = client.post("/accounts/switch", form_data(page, "/accounts/switch", session=str(session_of(user).pk)))
    assert response.status_code == 302, response.content
    assert client.get("/api/v1/auth/session").json()["user"]["email"] == user.email


@pytest.fixture
def three(people):
    """One browser signed in to a, b and c, with a active (a also signed in on a phone)."""
    session_create(user=people["a"])
    client = browser()
    sign_in(client, people["a"])
    sign_in(client, people["b"], add=True)
    sign_in(client, people["c"], add=True)
    switch_to(client, people["a"])
    return client


def refused(response, sent, current):
    body = response.content.decode()
    assert response.status_code == 409, (response.status_code, body[-2000:])
    assert 'data-refused="form-account"' in body and "Nothing was changed" in body
    row = AuditEvent.objects.filter(event=EventType.FORM_ACCOUNT_MISMATCH).latest("id")
    assert row.success is False and row.context["reason"] == "account_mismatch"
    assert row.actor_id == (current.pk if current else None)
    assert row.context["form_account"] == (str(sent.pk) if sent else None) or sent is None
    return body


# --- every form carries the account ---------------------------------------------------------------------
def _template_forms():
    for path in sorted(TEMPLATES.rglob("*.html")):
        for body in POST_FORM.findall(path.read_text()):
            yield str(path.relative_to(TEMPLATES)), body


def test_every_post_form_in_the_templates_renders_the_account_field():
    forms = list(_template_forms())
    assert len(forms) >= 30  # a scan that finds nothing proves nothing
    assert [name for name, body in forms if "{% csrf_token %}" not in body] == []
    assert "web.templatetags.form_account" in settings.TEMPLATES[0]["OPTIONS"]["builtins"]


SIGNED_IN_PAGES = [
    "/account", "/account/sessions", "/account/two-factor", "/accounts", "/organizations", "/organizations/{acme}",
    "/organizations/{acme}/delete", "/account/delete", "/account/email", "/account/reauthenticate?next=/account",
    "/login?add=1", "/invitations/accept?token=a@example.com", "/account/unlock?token=x", "/account/not-me?token=x",
    "/account/email/confirm?token=x", "/verify-email?token=x", "/reset-password?token=x", "/forgot-password",
    "/verify-email/resend", "/register", "/admin/", "/admin/accounts/user/", "/admin/accounts/user/{a_id}/change/",
    "/admin/orgs/organization/{acme}/change/",
    # OpenID Connect (issue 13): consent, account choice, sign-out confirmation, apps with access
    "/oidc/authorize?response_type=code&client_id={oidc}&redirect_uri=https%3A%2F%2Frp.example.com%2Fcb&scope=openid",
    "/oidc/authorize?response_type=code&client_id={oidc}&redirect_uri=https%3A%2F%2Frp.example.com%2Fcb&scope=openid"
    "&prompt=select_account",
    "/oidc/logout", "/account/apps",
]
SIGNED_OUT_PAGES = ["/login", "/register", "/forgot-password", "/verify-email/resend", "/verify-email?token=x",
                    "/reset-password?token=x", "/account/unlock?token=x", "/account/not-me?token=x",
                    "/account/email/confirm?token=x", "/login/two-factor"]


def test_every_post_form_of_every_page_carries_the_account_it_was_rendered_for(three, people):
    from oidc_provider.services.clients import oidc_client_create

    a = people["a"]
    oidc = oidc_client_create(name="Partner", redirect_uris=["https://rp.example.com/cb"]).client.client_id
    rendered, checked = set(), 0
    for path in SIGNED_IN_PAGES:
        response = three.get(path.format(acme=people["acme"].pk, a_id=a.pk, oidc=oidc))
        assert response.status_code == 200, (path, response.status_code)
        forms = carried(response)
        assert forms, f"{path} has no POST form"
        for action, values in forms:
            assert values == [str(a.pk)], (path, action, values)
            checked += 1
        rendered |= {t.name for t in response.templates if t.name}
    anonymous = browser()
    anonymous.cookies[web_settings.PENDING_COOKIE] = "mfa_pending"  # a sign-in waiting for its code
    for path in SIGNED_OUT_PAGES:
        response = anonymous.get(path)
        assert response.status_code == 200, path
        for action, values in carried(response):
            assert values == [""], (path, action, values)  # rendered while signed out
            checked += 1
        rendered |= {t.name for t in response.templates if t.name}
    assert checked > 60
    # Every template of ours with a POST form was among the pages checked.
    assert {name for name, _ in _template_forms() if name.startswith("web/")} <= rendered


# --- a mismatch is refused ---------------------------------------------------------------------------------
def test_a_form_rendered_for_a_is_refused_after_another_tab_switched_to_b(three, people):
    a, b = people["a"], people["b"]
    page = three.get("/account/sessions")  # a's page with a's forms
    others = form_data(page, "/account/sessions/revoke-others")
    sign_out = form_data(page, "/logout")
    profile = form_data(three.get("/account"), "/account/profile", name="Renamed")
    rename = form_data(three.get(f"/organizations/{people['acme'].pk}"), f"/organizations/{people['acme'].pk}/rename",
                       name="Hijacked")
    switch_c = form_data(three.get("/accounts"), "/accounts/switch", session=str(session_of(people["c"]).pk))
    switch_to(three, b)  # the other tab
    live = set(DeviceSession.objects.filter(revoked_at__isnull=True).values_list("pk", flat=True))

    body = refused(three.post("/account/sessions/revoke-others", others), a, b)
    assert "signed in as <strong>a@example.com</strong>" in body and "now signed in as <strong>b@example.com" in body
    assert 'href="/accounts"' in body
    refused(three.post("/logout", sign_out), a, b)
    refused(three.post("/account/profile", profile), a, b)
    refused(three.post(f"/organizations/{people['acme'].pk}/rename", rename), a, b)
    refused(three.post("/accounts/switch", switch_c), a, b)

    assert set(DeviceSession.objects.filter(revoked_at__isnull=True).values_list("pk", flat=True)) == live
    assert User.objects.get(pk=a.pk).name == "Ann" and User.objects.get(pk=b.pk).name == "Bob"
    assert Organization.objects.get(pk=people["acme"].pk).name == "Acme"
    assert three.get("/api/v1/auth/session").json()["user"]["email"] == b.email  # still b, nothing switched
    assert AuditEvent.objects.filter(event=EventType.FORM_ACCOUNT_MISMATCH, subject=a, actor=b).count() == 5


def test_the_same_form_goes_through_while_the_account_has_not_changed(three, people):
    profile = form_data(three.get("/account"), "/account/profile", name="Ann Lee")
    assert profile[FIELD] == str(people["a"].pk)
    response = three.post("/account/profile", profile)
    assert response.status_code == 200 and "Your profile is saved." in response.content.decode()
    assert User.objects.get(pk=people["a"].pk).name == "Ann Lee"
    assert not AuditEvent.objects.filter(event=EventType.FORM_ACCOUNT_MISMATCH).exists()


def test_switching_back_makes_the_form_valid_again(three, people):
    profile = form_data(three.get("/account"), "/account/profile", name="Ann Lee")
    switch_to(three, people["b"])
    refused(three.post("/account/profile", profile), people["a"], people["b"])
    switch_to(three, people["a"])
    assert three.post("/account/profile", profile).status_code == 200
    assert User.objects.get(pk=people["a"].pk).name == "Ann Lee"


def test_a_form_of_a_signed_in_page_after_signing_out_in_another_tab(people):
    session_create(user=people["a"])  # a phone
    client = browser()
    sign_in(client, people["a"])
    others = form_data(client.get("/account/sessions"), "/account/sessions/revoke-others")
    client.post("/logout", form_data(client.get("/account"), "/logout"))
    body = refused(client.post("/account/sessions/revoke-others", others), people["a"], None)
    assert "now signed out" in body and 'href="/login"' in body


def test_the_sign_in_form_opened_signed_out_is_refused_once_another_tab_signed_in(people):
    client = browser()
    login_form = form_data(client.get("/login"), "/login", email=people["b"].email, password=PASSWORD)
    assert login_form[FIELD] == ""
    sign_in(client, people["a"])  # the other tab
    body = refused(client.post("/login", login_form), None, people["a"])
    assert "while you were signed out" in body
    assert not DeviceSession.objects.filter(user=people["b"]).exists()


@pytest.mark.parametrize("value", [str(uuid.uuid4()), "not-a-uuid", ""])
def test_a_value_that_names_no_account_here_is_refused_and_names_nobody(three, people, value):
    data = form_data(three.get("/account"), "/account/profile", name="X")
    data[FIELD] = value
    body = refused(three.post("/account/profile", data), None, people["a"])
    row = AuditEvent.objects.filter(event=EventType.FORM_ACCOUNT_MISMATCH).latest("id")
    assert row.subject_id == people["a"].pk  # never the posted id
    assert row.context["form_account"] in (value or None, "not an account id")
    assert User.objects.get(pk=people["a"].pk).name == "Ann"
    assert "another account" in body or "signed out" in body


def test_two_different_values_are_refused(three, people):
    data = form_data(three.get("/account"), "/account/profile", name="X")
    data[FIELD] = [str(people["a"].pk), str(people["b"].pk)]
    assert three.post("/account/profile", data).status_code == 409
    assert User.objects.get(pk=people["a"].pk).name == "Ann"


def test_admin_forms_are_bound_too(three, people):
    b = people["b"]
    b.is_staff = b.is_superuser = True
    b.save()
    url = f"/admin/orgs/organization/{people['acme'].pk}/change/"
    data = form_data(three.get(url), "", name="Hijacked")
    switch_to(three, b)
    refused(three.post(url, data), people["a"], b)
    assert Organization.objects.get(pk=people["acme"].pk).name == "Acme"


def test_the_api_is_not_concerned(three, people):
    """API views are CSRF-exempt for Django (DRF checks the cookie's CSRF itself) and read JSON: a
    stray field is neither needed nor read there."""
    a_session = session_of(people["a"])
    response = three.post("/api/v1/auth/logout", {FIELD: str(uuid.uuid4())})
    assert response.status_code == 204
    assert DeviceSession.objects.get(pk=a_session.pk).revoked_at is not None
    assert not AuditEvent.objects.filter(event=EventType.FORM_ACCOUNT_MISMATCH).exists()


def test_refusals_are_rate_limited_like_every_page_post(three, people, settings):
    settings.SECURITY = {**settings.SECURITY, "RATE_LIMITS": {**settings.SECURITY["RATE_LIMITS"], "api": "2/m"}}
    data = form_data(three.get("/account"), "/account/profile", name="X")
    switch_to(three, people["b"])
    statuses = [three.post("/account/profile", data).status_code for _ in range(4)]
    assert statuses[:2] == [409, 409] and statuses[2:] == [429, 429]
    assert AuditEvent.objects.filter(event=EventType.FORM_ACCOUNT_MISMATCH).count() == 2


# --- the CSRF token rotates whenever who is signed in changes ----------------------------------------------
def _csrf(client) -> str:
    return client.cookies[settings.CSRF_COOKIE_NAME].value


def test_csrf_token_rotates_at_sign_in_adding_an_account_every_switch_and_sign_out(people):
    client = browser()
    client.get("/login")
    seen = [_csrf(client)]
    sign_in(client, people["a"])
    seen.append(_csrf(client))
    client.get("/login?add=1")
    sign_in(client, people["b"], add=True)
    seen.append(_csrf(client))
    switch_to(client, people["a"])
    seen.append(_csrf(client))
    switch_to(client, people["b"])
    seen.append(_csrf(client))
    client.post("/logout", form_data(client.get("/account"), "/logout"))  # hands over to a: a switch
    seen.append(_csrf(client))
    client.post("/logout", form_data(client.get("/account"), "/logout"))
    seen.append(_csrf(client))
    assert len(set(seen)) == len(seen), seen


def test_with_csrf_checks_a_form_of_another_tab_gets_the_account_page_not_a_bare_403(people):
    """What a browser sees: the switch rotated the token, so Django's CSRF check fails first; the
    failure page still says that the accounts differ."""
    session_create(user=people["a"])  # a phone
    client = Client(HTTP_USER_AGENT=CHROME, enforce_csrf_checks=True)
    client.post("/login", form_data(client.get("/login"), "/login", email=people["a"].email, password=PASSWORD))
    client.post("/login", form_data(client.get("/login?add=1"), "/login", email=people["b"].email,
                                    password=PASSWORD))
    switch_to(client, people["a"])
    others = form_data(client.get("/account/sessions"), "/account/sessions/revoke-others")
    switch_to(client, people["b"])
    live = DeviceSession.objects.filter(revoked_at__isnull=True).count()
    refused(client.post("/account/sessions/revoke-others", others), people["a"], people["b"])
    assert DeviceSession.objects.filter(revoked_at__isnull=True).count() == live

    # Same account again, but the token has rotated (switched away and back): an expired form.
    switch_to(client, people["a"])
    others = form_data(client.get("/account/sessions"), "/account/sessions/revoke-others")
    switch_to(client, people["b"])
    switch_to(client, people["a"])
    response = client.post("/account/sessions/revoke-others", others)
    assert response.status_code == 403 and "This form has expired" in response.content.decode()
    assert "Nothing was changed" in response.content.decode()
    row = AuditEvent.objects.filter(event=EventType.FORM_CSRF_FAILED).latest("id")
    assert row.actor_id == people["a"].pk and row.success is False and row.context["reason"] == "csrf"
    assert DeviceSession.objects.filter(revoked_at__isnull=True).count() == live

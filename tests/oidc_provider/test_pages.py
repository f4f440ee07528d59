"""The pages of the provider: consent for third-party clients (remembered per client and scopes,
withdrawable at /account/apps), choosing an account (several accounts in one browser, login_hint,
prompt=select_account), and the audit trail of what they do."""

from __future__ import annotations

import re

from django.test import Client

from audit.models import AuditEvent, EventType
from oidc_provider.models import Consent
from tests.factories import UserFactory
from tests.support.auth import page_login
from tests.support.oidc import REDIRECT, USERINFO, begin, finish, query_of, relying_party


def form_fields(page: bytes) -> dict:
    html = page.decode()
    return dict(re.findall(r'name="(csrfmiddlewaretoken|form_account|account)" value="([^"]*)"', html))


def consent(browser, path, decision="allow"):
    page = browser.get(path)
    assert page.status_code == 200 and b"Allow" in page.content, page.status_code
    return browser.post(path, {**form_fields(page.content), "decision": decision})


def test_third_party_client_asks_for_consent_once_per_scopes(browser, make_client, user):
    client, secret = make_client("Partner", first_party=False)
    rp = relying_party(client.client_id, secret, scope="openid email")
    started = begin(rp)
    page = browser.get(started["path"])
    text = page.content.decode()
    assert "Allow Partner?" in text and "See your email address" in text and "Know who you are" in text
    answer = consent(browser, started["path"])
    assert answer.status_code == 302 and answer["Location"].startswith(REDIRECT)
    assert finish(rp, answer["Location"], started["verifier"])["id_token"]
    assert Consent.objects.get(user=user, client=client).scopes == ["email", "openid"]
    # the same scopes again: no page; a new scope: asked again
    again = begin(rp)
    assert browser.get(again["path"])["Location"].startswith(REDIRECT)
    wider = begin(relying_party(client.client_id, secret, scope="openid email profile"))
    assert browser.get(wider["path"]).status_code == 200
    assert AuditEvent.objects.filter(event=EventType.OIDC_CONSENT_GRANTED, actor_id=user.pk).count() == 1


def test_consent_denied_redirects_with_access_denied(browser, make_client, user):
    client, secret = make_client("Partner", first_party=False)
    started = begin(relying_party(client.client_id, secret))
    answer = consent(browser, started["path"], decision="deny")
    assert query_of(answer["Location"])["error"] == "access_denied"
    assert query_of(answer["Location"])["state"] == started["state"]
    assert not Consent.objects.exists()
    assert AuditEvent.objects.filter(event=EventType.OIDC_CONSENT_DENIED, success=False).count() == 1


def test_prompt_none_without_consent_is_consent_required(browser, make_client):
    client, secret = make_client("Partner", first_party=False)
    started = begin(relying_party(client.client_id, secret), prompt="none")
    assert query_of(browser.get(started["path"])["Location"])["error"] == "consent_required"


def test_first_party_clients_never_ask(browser, confidential):
    client, secret = confidential
    started = begin(relying_party(client.client_id, secret), prompt="consent")
    assert browser.get(started["path"]).status_code == 302


def test_consent_post_without_csrf_is_refused(browser, make_client):
    client, secret = make_client("Partner", first_party=False)
    started = begin(relying_party(client.client_id, secret))
    page = browser.get(started["path"])
    forged = Client(enforce_csrf_checks=True)
    forged.cookies = browser.cookies
    fields = form_fields(page.content)
    fields.pop("csrfmiddlewaretoken")
    assert forged.post(started["path"], {**fields, "decision": "allow"}).status_code == 403
    assert not Consent.objects.exists()


def test_apps_page_lists_and_withdraws(browser, make_client, user):
    client, secret = make_client("Partner", first_party=False)
    rp = relying_party(client.client_id, secret, scope="openid offline_access")
    started = begin(rp)
    token = finish(rp, consent(browser, started["path"])["Location"], started["verifier"])
    page = browser.get("/account/apps")
    text = page.content.decode()
    assert page.status_code == 200 and "Partner" in text and "Keeps you signed in on 1 device" in text
    fields = form_fields(page.content)
    done = browser.post(f"/account/apps/{client.client_id}/revoke", fields)
    assert done.status_code == 302 and done["Location"] == "/account/apps"
    assert not Consent.objects.exists()
    assert Client().get(USERINFO, HTTP_AUTHORIZATION=f"Bearer {token['access_token']}").status_code == 401
    assert "No application has access" in browser.get("/account/apps").content.decode()
    assert AuditEvent.objects.filter(event=EventType.OIDC_CONSENT_WITHDRAWN, actor_id=user.pk).count() == 1
    # the next sign-in asks again
    assert browser.get(begin(rp)["path"]).status_code == 200


def test_apps_page_needs_a_signed_in_browser_and_a_real_client(browser):
    assert Client().get("/account/apps").status_code == 302
    page = browser.get("/account/apps")
    assert browser.post("/account/apps/oidc_nope/revoke", form_fields(page.content)).status_code == 404


def test_other_users_apps_are_not_shown(browser, make_client):
    client, secret = make_client("Partner", first_party=False)
    other = UserFactory()
    other_browser = Client()
    page_login(other_browser, other.email)
    started = begin(relying_party(client.client_id, secret))
    consent(other_browser, started["path"])
    assert "Partner" not in browser.get("/account/apps").content.decode()


# --- several accounts in one browser -----------------------------------------------------------------------------
def two_accounts(user):
    second = UserFactory(email="grace@example.com")
    browser = Client()
    page_login(browser, user.email)
    page_login(browser, second.email, add="1")  # grace is now the active account, ada the other one
    return browser, second


def sub_of(rp, browser, started):
    from tests.support.oidc import verify_id_token

    token = finish(rp, browser.get(started["path"])["Location"], started["verifier"])
    return verify_id_token(token["id_token"], client_id=rp.client_id)["sub"]


def test_login_hint_picks_the_account_signed_in_here(confidential, user):
    client, secret = confidential
    browser, second = two_accounts(user)
    rp = relying_party(client.client_id, secret)
    assert sub_of(rp, browser, begin(rp)) == str(second.pk)
    assert sub_of(rp, browser, begin(rp, login_hint=user.email)) == str(user.pk)
    assert sub_of(rp, browser, begin(rp, login_hint="GRACE@example.com")) == str(second.pk)


def test_login_hint_of_an_account_not_signed_in_goes_to_the_login_page(confidential, user):
    client, secret = confidential
    browser, _ = two_accounts(user)
    rp = relying_party(client.client_id, secret)
    response = browser.get(begin(rp, login_hint="someone@example.com")["path"])
    assert response.status_code == 302 and response["Location"].startswith("/login?add=1&next=")
    none = browser.get(begin(rp, login_hint="someone@example.com", prompt="none")["path"])
    assert query_of(none["Location"])["error"] == "login_required"


def test_select_account_shows_every_account_of_the_browser(confidential, user):
    client, secret = confidential
    browser, second = two_accounts(user)
    rp = relying_party(client.client_id, secret)
    started = begin(rp, prompt="select_account")
    page = browser.get(started["path"])
    text = page.content.decode()
    assert page.status_code == 200 and user.email in text and second.email in text
    assert "Use another account" in text
    # choosing the other account goes through the account switcher and back without the prompt
    switch = re.search(r'action="/accounts/switch".*?name="session" value="([^"]+)".*?name="next" value="([^"]+)"',
                       text, re.S)
    fields = form_fields(page.content)
    answer = browser.post("/accounts/switch", {"csrfmiddlewaretoken": fields["csrfmiddlewaretoken"],
                                               "form_account": fields.get("form_account", ""),
                                               "session": switch.group(1), "next": switch.group(2).replace("&amp;", "&")})
    assert answer.status_code == 302 and "select_account" not in answer["Location"]
    location = browser.get(answer["Location"])["Location"]
    from tests.support.oidc import verify_id_token

    token = finish(rp, location, started["verifier"])
    assert verify_id_token(token["id_token"], client_id=client.client_id)["sub"] == str(user.pk)


# --- the audit trail -------------------------------------------------------------------------------------------
def test_authorization_token_and_refusals_are_audited(browser, confidential, user):
    client, secret = confidential
    rp = relying_party(client.client_id, secret)
    started = begin(rp)
    finish(rp, browser.get(started["path"])["Location"], started["verifier"])
    granted = AuditEvent.objects.get(event=EventType.OIDC_AUTHORIZED)
    assert granted.actor_id == user.pk and granted.context["client_id"] == client.client_id
    issued = AuditEvent.objects.get(event=EventType.OIDC_TOKEN_ISSUED)
    assert issued.actor_id == user.pk and issued.context["grant_type"] == "authorization_code"
    browser.get("/oidc/authorize", {"response_type": "code", "client_id": client.client_id,
                                    "redirect_uri": "https://evil.example.com/", "scope": "openid"})
    refused = AuditEvent.objects.filter(event=EventType.OIDC_AUTHORIZATION_REFUSED, success=False).last()
    assert refused.context["client_id"] == client.client_id and refused.context["redirected"] is False
    Client().post("/oidc/token", {"grant_type": "authorization_code", "code": "nope", "redirect_uri": REDIRECT,
                                  "client_id": client.client_id, "client_secret": secret})
    token_refused = AuditEvent.objects.filter(event=EventType.OIDC_TOKEN_REFUSED, success=False).last()
    assert token_refused.context["reason"] == "invalid_grant"


# --- the form-action of the pages on the way to a client (oidc_provider/csp.py) ------------------------------------
def form_action(response) -> str:
    policy = response["Content-Security-Policy"]
    return next(part for part in policy.split(";") if part.strip().startswith("form-action")).strip()


def test_login_page_on_the_way_to_a_client_allows_its_origin(confidential):
    from urllib.parse import urlencode

    client, _ = confidential
    authorize = "/oidc/authorize?" + urlencode({"client_id": client.client_id, "redirect_uri": REDIRECT,
                                                 "response_type": "code", "scope": "openid"})
    page = Client().get("/login", {"next": authorize})
    assert form_action(page) == "form-action 'self' https://rp.example.com"
    # a redirect URI that is not registered, an unknown client, another next: nothing added
    for nxt in (authorize.replace("callback", "other"), authorize.replace(client.client_id, "oidc_x"), "/account"):
        assert form_action(Client().get("/login", {"next": nxt})) == "form-action 'self'"
    assert form_action(Client().get("/login")) == "form-action 'self'"


def test_consent_page_allows_the_client_origin(browser, make_client):
    client, secret = make_client("Partner", first_party=False)
    page = browser.get(begin(relying_party(client.client_id, secret))["path"])
    assert form_action(page) == "form-action 'self' https://rp.example.com"


def test_the_account_page_links_to_apps_with_access(browser):
    assert 'href="/account/apps"' in browser.get("/account").content.decode()

"""Whose budget: a stranger asking for someone's password reset spends their own network's share of
that address, never the owner's; when a botnet has spent the address's overall cap, the owner still
gets through from a device or browser that proves it is theirs (docs/security.md, "Whose budget")."""

import pytest
from django.test import Client, RequestFactory

from audit.models import AuditEvent, EventType
from security.lockout import known_device_token_issue
from tests.factories import PASSWORD, UserFactory
from tests.web.conftest import CHROME, page_login
from web.app_settings import app_settings as web_settings

pytestmark = pytest.mark.usefixtures("real_rate_limits")

FORGOT = "/api/v1/auth/forgot-password"
STRANGER = "203.0.113.5"
OWNER_IP = "198.51.100.7"


def forgot(api, email, ip, **body):
    return api.post(FORGOT, {"email": email, **body}, format="json", REMOTE_ADDR=ip)


def resets_mailed_to(mailoutbox, email):
    return [m for m in mailoutbox if email in m.to and "Reset your password" in m.subject]


def botnet_spends_the_cap(api, email):
    """Five requests from each of five networks: the address's overall cap (25/h) is spent."""
    for net in range(5):
        for host in range(5):
            assert forgot(api, email, f"10.{net}.0.{host + 1}").status_code == 202
    assert forgot(api, email, "10.99.0.1").status_code == 429  # a sixth network: the cap


def test_a_stranger_spends_their_own_share_not_the_owners(api, mailoutbox):
    owner = UserFactory()
    codes = [forgot(api, owner.email, STRANGER).status_code for _ in range(4)]
    assert codes == [202, 202, 202, 429]  # per client IP (3 per 5 minutes)
    # Hopping addresses inside the stranger's network: that network's share of the address (5 an hour).
    codes = [forgot(api, owner.email, f"203.0.113.{i}").status_code for i in range(20, 24)]
    assert codes == [202, 202, 429, 429]
    assert AuditEvent.objects.filter(event=EventType.RATE_LIMITED, context__scope="mail_address").exists()
    before = len(resets_mailed_to(mailoutbox, owner.email))
    assert forgot(api, owner.email, OWNER_IP).status_code == 202  # the owner, from home, is not blocked
    assert len(resets_mailed_to(mailoutbox, owner.email)) == before + 1


def test_after_the_cap_the_owners_device_token_still_gets_the_link(api, mailoutbox):
    owner = UserFactory()
    botnet_spends_the_cap(api, owner.email)
    assert forgot(api, owner.email, OWNER_IP).status_code == 429  # no proof: the cap holds
    before = len(resets_mailed_to(mailoutbox, owner.email))
    response = forgot(api, owner.email, OWNER_IP, deviceToken=known_device_token_issue(user=owner, request=None))
    assert response.status_code == 202
    assert len(resets_mailed_to(mailoutbox, owner.email)) == before + 1


def test_the_owner_share_holds_behind_the_strangers_own_address(api, mailoutbox):
    """Same NAT (office, café): the stranger has spent the per-IP budget the owner would use."""
    owner = UserFactory()
    for _ in range(3):
        forgot(api, owner.email, STRANGER)
    assert forgot(api, owner.email, STRANGER).status_code == 429
    token = known_device_token_issue(user=owner, request=None)
    assert forgot(api, owner.email, STRANGER, deviceToken=token).status_code == 202


def test_the_owner_share_is_limited_too(api):
    owner = UserFactory()
    token = known_device_token_issue(user=owner, request=None)
    codes = [forgot(api, owner.email, OWNER_IP, deviceToken=token).status_code for _ in range(4)]
    assert codes == [202, 202, 202, 429]  # the scope's rate, in the owner's own share


def test_no_proof_from_a_wrong_forged_or_other_accounts_token(api):
    owner, other = UserFactory(), UserFactory()
    botnet_spends_the_cap(api, owner.email)
    for token in ("", "garbage", known_device_token_issue(user=other, request=None), known_device_token_issue(user=owner, request=None) + "x"):
        assert forgot(api, owner.email, f"192.0.2.{len(token) % 200 + 1}", deviceToken=token).status_code == 429


def test_a_device_token_is_no_proof_for_an_unknown_address(api):
    owner = UserFactory()
    botnet_spends_the_cap(api, "nobody@example.com")
    response = forgot(api, "nobody@example.com", OWNER_IP, deviceToken=known_device_token_issue(user=owner, request=None))
    assert response.status_code == 429


# --- the page: the known-device cookie, or a signed-in session of the account -----------------------------
def test_the_page_with_the_owners_device_cookie_gets_the_link(api, mailoutbox):
    owner = UserFactory()
    botnet_spends_the_cap(api, owner.email)
    stranger = Client(REMOTE_ADDR=OWNER_IP)
    assert stranger.post("/forgot-password", {"email": owner.email}).status_code == 429
    browser = Client(HTTP_USER_AGENT=CHROME, REMOTE_ADDR=OWNER_IP)
    issued_to_this_browser = RequestFactory(HTTP_USER_AGENT=CHROME).get("/")  # known devices are bound to it
    browser.cookies[web_settings.DEVICE_COOKIE] = known_device_token_issue(user=owner, request=issued_to_this_browser)
    before = len(resets_mailed_to(mailoutbox, owner.email))
    response = browser.post("/forgot-password", {"email": owner.email})
    assert response.status_code == 200 and "Check your inbox" in response.content.decode()
    assert len(resets_mailed_to(mailoutbox, owner.email)) == before + 1


def test_the_page_signed_in_as_the_owner_gets_the_link(api, mailoutbox):
    owner = UserFactory()
    browser = Client(HTTP_USER_AGENT=CHROME, REMOTE_ADDR=OWNER_IP)
    assert page_login(browser, owner.email, PASSWORD).status_code == 302
    browser.cookies.pop(web_settings.DEVICE_COOKIE)  # the session alone is the proof here
    botnet_spends_the_cap(api, owner.email)
    response = browser.post("/forgot-password", {"email": owner.email})
    assert response.status_code == 200


def test_the_page_signed_in_as_someone_else_has_no_proof(api):
    owner, other = UserFactory(), UserFactory()
    browser = Client(HTTP_USER_AGENT=CHROME, REMOTE_ADDR=OWNER_IP)
    assert page_login(browser, other.email, PASSWORD).status_code == 302
    botnet_spends_the_cap(api, owner.email)
    assert browser.post("/forgot-password", {"email": owner.email}).status_code == 429

"""End-to-end in Chromium: the example relying party (examples/oidc_client, Authlib's Django client) signs a
user in through the real provider: "Sign in" -> our login page -> consent (a third-party client) -> back in the
example, signed in; then RP-initiated logout ends the provider's browser session too. Provider and example each
run under the production server (granian, config.serve) as their own process (tests/e2e/conftest.py), on different host names (127.0.0.1 and
localhost) so their cookies stay apart."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, USER_PASSWORD, base_env, free_port, run, start_server

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"

MAKE_USER = """
from django.utils import timezone
from accounts.models import User
User.objects.create_user({email!r}, {password!r}, name="Example User", email_verified_at=timezone.now())
"""

# A second user with an authenticator app (two-factor): prints its secret on the last line.
MAKE_TOTP_USER = MAKE_USER + """
import time, pyotp
from mfa.services import totp_confirm, totp_setup_start
user = User.objects.get(email={email!r})
secret = totp_setup_start(user=user).secret
assert totp_confirm(user=user, code=pyotp.TOTP(secret).at(time.time() - 30))  # one step of drift
print(secret)
"""


@pytest.fixture(scope="module")
def oidc_world(provider_database, e2e_logs, tmp_path_factory):
    provider_port, example_port = free_port(), free_port()
    provider_url, example_url = f"http://127.0.0.1:{provider_port}", f"http://localhost:{example_port}"
    env = base_env(DJANGO_SETTINGS_MODULE="config.settings", DEBUG="true", DATABASE_URL=provider_database,
                   MANA_DATA_DIR=str(tmp_path_factory.mktemp("e2e-oidc-data")), LOG_LEVEL="WARNING",
                   EMAIL_URL="consolemail://", AUTH_PUBLIC_URL=provider_url)
    run(["migrate", "--noinput"], env=env, timeout=180)
    email = f"rp-{uuid.uuid4().hex[:8]}@example.com"
    run(["shell", "-c", MAKE_USER.format(email=email, password=USER_PASSWORD)], env=env)
    totp_email = f"rp-2fa-{uuid.uuid4().hex[:8]}@example.com"
    totp_secret = run(["shell", "-c", MAKE_TOTP_USER.format(email=totp_email, password=USER_PASSWORD)],
                      env=env).strip().splitlines()[-1]
    creds = json.loads(run(["create_oidc_client", "Example app", "--redirect-uri", f"{example_url}/callback",
                            "--post-logout-redirect-uri", f"{example_url}/"], env=env).strip().splitlines()[-1])
    provider = start_server("oidc-provider", "config.wsgi", cwd=REPO, env=env, logdir=e2e_logs,
                              ready_path="/.well-known/openid-configuration", port=provider_port)
    example = None
    try:
        example_env = base_env(DJANGO_SETTINGS_MODULE="oidc_client.settings", MANA_OIDC_ISSUER=provider_url,
                               MANA_OIDC_CLIENT_ID=creds["clientId"], MANA_OIDC_CLIENT_SECRET=creds["clientSecret"],
                               EXAMPLE_BASE_URL=example_url, AUTHLIB_INSECURE_TRANSPORT="1", DEBUG="true")
        example = start_server("oidc-example", "oidc_client.wsgi", cwd=REPO / "examples", env=example_env,
                                 logdir=e2e_logs, ready_path="/", port=example_port, host="localhost")
        yield {"provider": provider, "example": example, "email": email, "totp_email": totp_email,
               "totp_secret": totp_secret}
    finally:
        if example is not None:
            example.stop()
        provider.stop()


@pytest.fixture
def chromium():
    """Function scope: Playwright's event loop is closed before the test database is flushed."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"needs Chromium at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield browser
        browser.close()


def test_sign_in_with_consent_then_rp_initiated_logout(oidc_world, chromium):
    provider, example, email = oidc_world["provider"].url, oidc_world["example"].url, oidc_world["email"]
    context = chromium.new_context()
    page = context.new_page()
    try:
        page.goto(f"{example}/")
        assert page.locator("#who").inner_text() == "Not signed in"
        page.click("#login")
        page.wait_for_url(f"{provider}/login?**")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(USER_PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_url(f"{provider}/oidc/authorize?**")
        assert "Allow Example app?" in page.content()
        assert page.locator("[data-scope=email]").count() == 1
        page.get_by_role("button", name="Allow", exact=True).click()
        page.wait_for_url(f"{example}/")
        assert page.locator("#who").inner_text() == f"Signed in as {email} (Example User)"
        # signed in at the provider too: its account page answers
        page.goto(f"{provider}/account/apps")
        assert "Example app" in page.content()
        # RP-initiated logout: back in the example, and the provider's browser session is over
        page.goto(f"{example}/")
        page.click("#logout")
        page.wait_for_url(f"{example}/?state=signed-out")
        assert page.locator("#who").inner_text() == "Not signed in"
        page.goto(f"{provider}/account")
        assert page.url.startswith(f"{provider}/login")
    except Exception:
        print("at", page.url, page.content()[:3000])
        print(oidc_world["provider"].describe(), oidc_world["example"].describe())
        raise
    finally:
        context.close()


def test_a_user_with_two_factor_gives_the_code_on_the_way_to_the_app(oidc_world, chromium):
    """The same way in, through the second factor: login page -> /login/two-factor -> consent -> the app.
    The session the app gets says how the user signed in (amr with otp and mfa)."""
    import pyotp

    provider, example = oidc_world["provider"].url, oidc_world["example"].url
    email, secret = oidc_world["totp_email"], oidc_world["totp_secret"]
    context = chromium.new_context()
    page = context.new_page()
    try:
        page.goto(f"{example}/")
        page.click("#login")
        page.wait_for_url(f"{provider}/login?**")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(USER_PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_url(f"{provider}/login/two-factor?**")
        page.get_by_label("Code from your authenticator app").fill(pyotp.TOTP(secret).now())
        page.get_by_role("button", name="Continue").click()
        page.wait_for_url(f"{provider}/oidc/authorize?**")
        page.get_by_role("button", name="Allow", exact=True).click()
        page.wait_for_url(f"{example}/")
        assert page.locator("#who").inner_text() == f"Signed in as {email} (Example User)"
    except Exception:
        print("at", page.url, page.content()[:3000])
        print(oidc_world["provider"].describe(), oidc_world["example"].describe())
        raise
    finally:
        context.close()

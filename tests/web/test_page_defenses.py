"""The pages get the same lockout and rate limits as the API (issue 4's security app)."""

import pytest
from django.apps import apps

from tests.support.auth import page_login

pytestmark = pytest.mark.skipif(not apps.is_installed("security"), reason="needs the security app (issue 4)")


def test_login_page_is_rate_limited_like_the_api(web, user, settings):
    settings.SECURITY = {**settings.SECURITY, "RATE_LIMITS": {"login": "2/m"}}
    assert page_login(web, "nobody@example.com", password="Wrong-Password-1234").status_code == 200
    assert page_login(web, "nobody@example.com", password="Wrong-Password-1234").status_code == 200
    limited = page_login(web, user.email)
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert "Too many attempts" in limited.content.decode()


def test_forgot_password_page_is_limited_per_email_too(web, user, settings):
    settings.SECURITY = {**settings.SECURITY, "RATE_LIMITS": {"forgot_password": "1/m"}}
    assert web.post("/forgot-password", {"email": user.email}).status_code == 200
    assert web.post("/forgot-password", {"email": user.email}).status_code == 429


def test_login_page_locks_out_like_the_api(web, user, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert page_login(web, user.email, password="Wrong-Password-1234").status_code == 200
    locked = page_login(web, user.email, password="Wrong-Password-1234")
    assert locked.status_code == 429 and locked["Retry-After"]
    assert page_login(web, user.email).status_code == 429  # even the right password, while locked

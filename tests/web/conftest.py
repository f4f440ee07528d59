import pytest
from django.test import Client

from sessions_app.app_settings import app_settings
from tests.factories import PASSWORD

CHROME = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/126.0.0.0 Safari/537.36")
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.5 Mobile/15E148 Safari/604.1")


@pytest.fixture
def web():
    return Client(HTTP_USER_AGENT=CHROME)


def page_login(client, email, password=PASSWORD, remember=False, **extra):
    data = {"email": email, "password": password, **extra}
    if remember:
        data["remember_me"] = "on"
    return client.post("/login", data)


def session_cookie(client):
    return client.cookies.get(app_settings.SESSION_COOKIE)


def cache_cookie(client):
    return client.cookies.get(app_settings.CACHE_COOKIE)


@pytest.fixture
def signed_in(web, user):
    response = page_login(web, user.email)
    assert response.status_code == 302, response.content
    return web

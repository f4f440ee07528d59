import pytest
from django.test import Client

from oidc_provider.services.clients import oidc_client_create
from tests.factories import UserFactory
from tests.support.agents import CHROME_LINUX
from tests.support.auth import page_login
from tests.support.oidc import BASE, POST_LOGOUT, REDIRECT


@pytest.fixture(autouse=True)
def oidc_settings(settings, monkeypatch):
    settings.AUTH_PUBLIC_URL = BASE
    settings.AUTH_OIDC_ISSUER = ""
    # Authlib's *client* (the relying party) refuses plain http; the test server speaks it (the provider does not
    # care: transport security is Django's, oidc_provider/server.py DjangoRequest).
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture
def make_client():
    def make(name="Grafana", *, public=False, first_party=True, **kwargs):
        kwargs.setdefault("redirect_uris", [REDIRECT])
        kwargs.setdefault("post_logout_redirect_uris", [POST_LOGOUT])
        created = oidc_client_create(name=name, public=public, first_party=first_party, **kwargs)
        return created.client, created.client_secret or None

    return make


@pytest.fixture
def confidential(make_client):
    return make_client()


@pytest.fixture
def user():
    return UserFactory(email="ada@example.com", name="Ada Lovelace")


@pytest.fixture
def browser(user):
    """A browser signed in to our login page as ``user``."""
    client = Client(HTTP_USER_AGENT=CHROME_LINUX)
    assert page_login(client, user.email).status_code == 302
    return client

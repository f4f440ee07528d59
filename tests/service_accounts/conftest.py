import pytest
from rest_framework.test import APIClient

from service_accounts.services import service_account_create

SERVICE_TOKEN = "/api/v1/auth/service-token"
INTROSPECT = "/api/v1/auth/introspect"


@pytest.fixture
def account(db):
    """A service account and its one-time secret."""
    return service_account_create(name="billing-service")


def obtain(api, client_id, client_secret):
    return api.post(SERVICE_TOKEN, {"clientId": client_id, "clientSecret": client_secret}, format="json")


@pytest.fixture
def service_token(api, account):
    response = obtain(api, account.client.client_id, account.client_secret)
    assert response.status_code == 200, response.content
    return response.json()["accessToken"]


@pytest.fixture
def service_api(service_token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {service_token}")
    return client


def introspect(client, token):
    return client.post(INTROSPECT, {"token": token}, format="json")

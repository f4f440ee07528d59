import pytest

from service_accounts.services import service_account_create
from tests.support.auth import bearer, obtain


@pytest.fixture
def account(db):
    """A service account and its one-time secret."""
    return service_account_create(name="billing-service")


@pytest.fixture
def service_token(api, account):
    response = obtain(api, account.client.client_id, account.client_secret)
    assert response.status_code == 200, response.content
    return response.json()["accessToken"]


@pytest.fixture
def service_api(service_token):
    return bearer(service_token)

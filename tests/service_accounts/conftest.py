import pytest

from service_accounts.services import service_account_create
from tests.support.auth import bearer, obtain

# Old names, importable from here for tests written before the helpers moved to tests/support/
# (other branches may still add such imports); new tests import from tests/support.
from tests.support.auth import introspect  # noqa: F401
from tests.support.paths import INTROSPECT, SERVICE_TOKEN  # noqa: F401


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

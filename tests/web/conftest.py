import pytest
from django.test import Client

from tests.support.agents import CHROME_LINUX
from tests.support.auth import page_login

# Old names, importable from here for tests written before the helpers moved to tests/support/
# (other branches may still add such imports); new tests import from tests/support.
from tests.support.agents import CHROME_LINUX as CHROME  # noqa: F401
from tests.support.agents import IPHONE_SAFARI as IPHONE  # noqa: F401
from tests.support.auth import cache_cookie, session_cookie  # noqa: F401


@pytest.fixture
def web():
    return Client(HTTP_USER_AGENT=CHROME_LINUX)


@pytest.fixture
def signed_in(web, user):
    response = page_login(web, user.email)
    assert response.status_code == 302, response.content
    return web

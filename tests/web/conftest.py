import pytest
from django.test import Client

from tests.support.agents import CHROME_LINUX
from tests.support.auth import page_login


@pytest.fixture
def web():
    return Client(HTTP_USER_AGENT=CHROME_LINUX)


@pytest.fixture
def signed_in(web, user):
    response = page_login(web, user.email)
    assert response.status_code == 302, response.content
    return web

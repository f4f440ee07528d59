import pytest

from tests.factories import PASSWORD

LOGIN = "/api/v1/auth/login"
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.0.0 Safari/537.36")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"


def post_login(api, email, password=PASSWORD, ip="127.0.0.1", ua="", meta=None, **body):
    return api.post(LOGIN, {"email": email, "password": password, **body}, format="json", REMOTE_ADDR=ip,
                    HTTP_USER_AGENT=ua, **(meta or {}))


@pytest.fixture
def real_rate_limits(settings):
    """The production rate limits (the suite's autouse fixture raises them), with this test's own counters."""
    settings.SECURITY = {k: v for k, v in settings.SECURITY.items() if k != "RATE_LIMITS"}

import pytest

# Old names, importable from here for tests written before the helpers moved to tests/support/
# (other branches may still add such imports); new tests import from tests/support.
from tests.support.agents import CHROME_WINDOWS as CHROME  # noqa: F401
from tests.support.agents import FIREFOX_LINUX as FIREFOX  # noqa: F401
from tests.support.auth import login_attempt as post_login  # noqa: F401
from tests.support.paths import LOGIN  # noqa: F401


@pytest.fixture
def real_rate_limits(settings):
    """The production rate limits (the suite's autouse fixture raises them), with this test's own counters."""
    settings.SECURITY = {k: v for k, v in settings.SECURITY.items() if k != "RATE_LIMITS"}

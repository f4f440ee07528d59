import pytest


@pytest.fixture
def real_rate_limits(settings):
    """The production rate limits (the suite's autouse fixture raises them), with this test's own counters."""
    settings.SECURITY = {k: v for k, v in settings.SECURITY.items() if k != "RATE_LIMITS"}

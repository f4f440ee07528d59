import pytest


@pytest.fixture(autouse=True)
def _seal_on_commit(settings):
    """The audit tests seal after each commit, whatever the broker (the embedded default's behaviour):
    a test that needs rows left unsealed turns it off."""
    settings.AUDIT = {**settings.AUDIT, "SEAL_ON_COMMIT": True}

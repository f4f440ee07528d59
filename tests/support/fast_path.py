"""For the tests of the paths answered before DRF (sessions_app.middleware): which requests reached a DRF
view, and the same request taken the whole way (the middleware left out)."""

from django.conf import settings
from django.test import override_settings
from rest_framework.views import APIView


def drf_views_reached(monkeypatch, *, prefix: str = "") -> list[str]:
    """The paths (starting with ``prefix``) of the requests that reach a DRF view from now on."""
    seen = []
    original = APIView.initial

    def initial(self, request, *args, **kwargs):
        if request.path.startswith(prefix):
            seen.append(request.path)
        return original(self, request, *args, **kwargs)

    monkeypatch.setattr(APIView, "initial", initial)
    return seen


def without_middleware(name: str):
    """Settings without the middleware ``name``. A test client's handler loads MIDDLEWARE once: make the
    client inside the block."""
    return override_settings(MIDDLEWARE=[entry for entry in settings.MIDDLEWARE if entry != name])

"""URL-level error handlers and the schema view: the API keeps its envelope even outside DRF views."""

import sys

from django.conf import settings
from django.http import HttpResponse
from django.views import defaults
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SCHEMA_KWARGS, SpectacularAPIView
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from core.errors import json_error
from core.outage import is_outage, outage_response


def _is_api(request) -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/.well-known/")


def not_found(request, exception=None):
    if _is_api(request):
        return json_error("not_found", "Not found.", 404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    exc = sys.exc_info()[1]
    if is_outage(exc):  # raised in a middleware (a view's is answered by the handler or OutageMiddleware)
        return outage_response(request, exc)
    if _is_api(request):
        return json_error("server_error", "Something went wrong on our side.", 500)
    return defaults.server_error(request)


def bad_request(request, exception=None):
    if _is_api(request):
        # Django's SuspiciousOperation family: a Host not in ALLOWED_HOSTS, too many query parameters, ...
        return json_error("malformed_request", "The request is malformed.", 400)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    if _is_api(request):
        return json_error("permission_denied", "You do not have permission to perform this action.", 403)
    return defaults.permission_denied(request, exception)


class SchemaApi(SpectacularAPIView):
    """The OpenAPI document (YAML by default; JSON with ``?format=json`` or
    ``Accept: application/vnd.oai.openapi+json``). Its errors are JSON like every other API error,
    not rendered by the negotiated (YAML) renderer.

    Generated and rendered once per process and format (about 0.1 s each time otherwise): the document
    depends only on the code. ``?lang=`` outside settings.LANGUAGES is not cached (the keys stay few)."""

    authentication_classes: list = []
    permission_classes: list = []
    _rendered: dict = {}  # (media type, version, lang) -> (body, headers)

    @classmethod
    def cache_clear(cls) -> None:
        cls._rendered.clear()

    @extend_schema(**SCHEMA_KWARGS)
    def get(self, request, *args, **kwargs):
        lang = request.GET.get("lang")
        if lang and lang not in dict(settings.LANGUAGES):
            return super().get(request, *args, **kwargs)
        version = self.api_version or request.version or self._get_version_parameter(request)
        key = (request.accepted_media_type, version, lang)
        cached = self._rendered.get(key)
        if cached is None:
            response = super().get(request, *args, **kwargs)
            renderer = request.accepted_renderer
            body = renderer.render(response.data, request.accepted_media_type, self.get_renderer_context())
            content_type = request.accepted_media_type
            if renderer.charset and "charset" not in content_type:
                content_type = f"{content_type}; charset={renderer.charset}"
            cached = self._rendered[key] = (body, {**dict(response.headers), "Content-Type": content_type})
        body, headers = cached
        response = HttpResponse(body)
        for name, value in headers.items():
            response[name] = value
        return response

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return response


class PublicApi(APIView):
    """Endpoints that must work without (and ignore) credentials."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

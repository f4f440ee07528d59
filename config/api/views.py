"""URL-level error handlers: the API keeps its envelope even outside DRF views."""

from django.views import defaults

from config.api.errors import json_error


def _is_api(request) -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/.well-known/")


def not_found(request, exception=None):
    if _is_api(request):
        return json_error("not_found", "Not found.", 404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        return json_error("server_error", "Something went wrong on our side.", 500)
    return defaults.server_error(request)


def bad_request(request, exception=None):
    if _is_api(request):
        return json_error("bad_request", "Bad request.", 400)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    if _is_api(request):
        return json_error("permission_denied", "You do not have permission to perform this action.", 403)
    return defaults.permission_denied(request, exception)

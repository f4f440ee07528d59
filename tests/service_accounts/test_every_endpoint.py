"""A service token sent to every API URL the provider serves: never a 5xx, and never a success
except where service tokens are meant to work (introspect) or no authentication is needed."""

import re
import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

# Public endpoints ignore the Authorization header; these may answer 2xx to a service token.
PUBLIC_OK = {"/api/v1/auth/jwks", "/.well-known/jwks.json", "/api/v1/schema/", "/api/v1/auth/introspect",
             "/.well-known/openid-configuration",  # OpenID Connect discovery (public)
             "/api/v1/auth/passkeys/login/options"}  # a passwordless ceremony starts before anyone is known


def _paths(patterns, prefix=""):
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _paths(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            yield route


def api_paths():
    found = set()
    for route in _paths(get_resolver().url_patterns):
        route = route.lstrip("^").rstrip("$")
        if not route.startswith(("api/", ".well-known/")):
            continue
        route = re.sub(r"<uuid:[^>]+>", str(uuid.uuid4()), route)
        route = re.sub(r"<(?:int:)?[^>]+>", "1", route)
        found.add("/" + route)
    return sorted(found)


@pytest.mark.parametrize("path", api_paths())
def test_service_token_everywhere(service_api, path):
    for method in ("get", "post", "patch", "delete"):
        response = getattr(service_api, method)(path, {}, format="json")
        assert response.status_code < 500, (method, path, response.content)
        if 200 <= response.status_code < 300:
            assert path in PUBLIC_OK, (method, path, response.status_code, response.content)

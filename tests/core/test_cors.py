"""core.middleware.CorsMiddleware: django-cors-headers' answer, without request.headers when there is no Origin."""

import pytest
from corsheaders.middleware import CorsMiddleware as LibraryCorsMiddleware
from django.http import HttpResponse
from django.test import RequestFactory

from core.middleware import CorsMiddleware


def _answer(middleware_class, request):
    return middleware_class(lambda request: HttpResponse("{}", content_type="application/json"))(request)


@pytest.mark.parametrize("path", ["/api/v1/auth/refresh", "/.well-known/openid-configuration", "/login"])
def test_a_request_without_an_origin_gets_the_librarys_headers_without_its_headers_dict(path):
    request = RequestFactory().post(path, data="{}", content_type="application/json")
    response = _answer(CorsMiddleware, request)
    assert "headers" not in request.__dict__  # request.headers (a dict of every header) was never built
    expected = _answer(LibraryCorsMiddleware, RequestFactory().post(path, data="{}", content_type="application/json"))
    assert dict(response.items()) == dict(expected.items())
    assert response.get("Vary") == ("origin" if path != "/login" else None)


@pytest.mark.parametrize("origin", ["https://app.example.com", "https://evil.example.net"])
def test_a_request_with_an_origin_goes_the_librarys_way(settings, origin):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    ours = _answer(CorsMiddleware, RequestFactory().get("/api/v1/auth/jwks", HTTP_ORIGIN=origin))
    theirs = _answer(LibraryCorsMiddleware, RequestFactory().get("/api/v1/auth/jwks", HTTP_ORIGIN=origin))
    assert dict(ours.items()) == dict(theirs.items())
    assert ("Access-Control-Allow-Origin" in ours) is (origin == "https://app.example.com")


def test_the_middleware_in_the_stack_is_ours(settings):
    assert "core.middleware.CorsMiddleware" in settings.MIDDLEWARE
    assert "corsheaders.middleware.CorsMiddleware" not in settings.MIDDLEWARE

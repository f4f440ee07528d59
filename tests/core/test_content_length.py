"""Every answer that is not streamed carries its Content-Length (core.middleware.ContentLengthMiddleware), the
fast paths' answers too, which Django's CommonMiddleware never sees."""

import pytest
from django.http import HttpResponse, StreamingHttpResponse
from django.test import RequestFactory
from rest_framework.test import APIClient

from core.middleware import ContentLengthMiddleware
from tests.support.auth import bearer, login

pytestmark = pytest.mark.django_db


def _length_said(response) -> bool:
    return response["Content-Length"] == str(len(response.content))


def test_bearer_refresh_jwks_and_health_answers_say_their_length(user):
    client = APIClient()
    pair = login(client, user.email)
    refreshed = client.post("/api/v1/auth/refresh", {"refreshToken": pair["refreshToken"]}, format="json")
    assert refreshed.status_code == 200 and _length_said(refreshed)
    refused = client.post("/api/v1/auth/refresh", {"refreshToken": "mrt_unknown"}, format="json")
    assert refused.status_code == 401 and _length_said(refused)
    phone = bearer(pair)
    for path in ("/api/v1/auth/me", "/api/v1/auth/sessions/active"):
        answer = phone.get(path)
        assert answer.status_code == 200 and _length_said(answer), path
    for path in ("/.well-known/jwks.json", "/healthz"):
        answer = APIClient().get(path)
        assert answer.status_code == 200 and _length_said(answer), path


def test_a_length_already_said_and_a_stream_are_left_alone():
    request = RequestFactory().get("/")
    said = HttpResponse(b"abc")
    said["Content-Length"] = "3"
    assert ContentLengthMiddleware(lambda request: said)(request)["Content-Length"] == "3"
    stream = ContentLengthMiddleware(lambda request: StreamingHttpResponse(iter([b"a", b"b"])))(request)
    assert "Content-Length" not in stream

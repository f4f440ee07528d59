"""GET /healthz (alive, no I/O) and GET /readyz (database, Redis, broker, with timings) for load
balancers: plain HTTP and any Host, no configuration in the answer, 503 when a dependency is down."""

from __future__ import annotations

import json

import pytest
from django.db import OperationalError, connection
from django.test import Client, override_settings


def refuse(execute, sql, params, many, context):
    raise OperationalError("connection refused")


def body(response) -> dict:
    return json.loads(response.content)


@override_settings(SECURE_SSL_REDIRECT=True, ALLOWED_HOSTS=["auth.example.com"])
def test_healthz_answers_over_http_for_any_host_without_io(django_assert_num_queries):
    client = Client(HTTP_HOST="10.1.2.3:8000")
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200 and body(response) == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"
    assert client.head("/healthz").status_code == 200


@override_settings(SECURE_SSL_REDIRECT=True, ALLOWED_HOSTS=["auth.example.com"])
def test_readyz_names_each_dependency_with_its_time_and_nothing_else():
    response = Client(HTTP_HOST="10.1.2.3").get("/readyz")
    assert response.status_code == 200, response.content
    data = body(response)
    assert data["status"] == "ok" and set(data["checks"]) == {"database", "redis", "broker"}
    for check in data["checks"].values():
        assert set(check) == {"status", "ms"} and check["status"] in ("up", "skipped") and check["ms"] >= 0
    assert data["checks"]["database"]["status"] == "up"
    text = response.content.decode()
    for leak in ("redis://", "postgres", "sqlite", "127.0.0.1", "localhost", "version", "6379", "5432"):
        assert leak not in text


def test_readyz_is_503_when_the_database_is_down():
    connection.close()  # the probe must connect (and the wrapper refuse) like after an outage began
    with connection.execute_wrapper(refuse):
        response = Client().get("/readyz")
    assert response.status_code == 503 and response["Retry-After"].isdigit()
    data = body(response)
    assert data["status"] == "unavailable" and data["checks"]["database"]["status"] == "down"
    assert "refused" not in response.content.decode()  # the cause is in the log, not the answer


@pytest.mark.redis
def test_readyz_is_503_when_redis_is_down(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    response = Client().get("/readyz")
    assert response.status_code == 503 and body(response)["checks"]["redis"]["status"] == "down"


def test_other_methods_are_not_answered_by_the_probe():
    assert Client().post("/healthz").status_code in (403, 404, 405)

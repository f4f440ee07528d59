"""The OpenAPI document is generated once per process and format (core/views.py SchemaApi)."""

from __future__ import annotations

from drf_spectacular.generators import SchemaGenerator

from core.views import SchemaApi

SCHEMA = "/api/v1/schema/"


def test_generated_once_per_format(client, monkeypatch):
    SchemaApi.cache_clear()
    calls = []
    original = SchemaGenerator.get_schema

    def counted(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SchemaGenerator, "get_schema", counted)
    first = client.get(SCHEMA, {"format": "json"})
    second = client.get(SCHEMA, {"format": "json"})
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert first["Content-Type"] == second["Content-Type"] == "application/vnd.oai.openapi+json"
    assert len(calls) == 1
    yaml = client.get(SCHEMA)
    assert yaml.status_code == 200 and yaml["Content-Type"].startswith("application/vnd.oai.openapi")
    assert yaml.content.startswith(b"openapi:")
    assert len(calls) == 2  # YAML is its own rendering
    client.get(SCHEMA)
    client.get(SCHEMA, {"lang": "xx-not-a-language"})  # not cached: the cache keys stay few
    assert len(calls) == 3
    assert len(SchemaApi._rendered) == 2


def test_error_answers_name_their_headers(client):
    """Every documented 401 names WWW-Authenticate and every 429 Retry-After (core.schema.error_headers);
    tests/fuzz checks real answers against them."""
    import json

    document = json.loads(client.get(SCHEMA, {"format": "json"}).content)
    seen = 0
    for operations in document["paths"].values():
        for operation in operations.values():
            responses = operation["responses"]
            if "401" in responses:
                assert responses["401"]["headers"]["WWW-Authenticate"]["required"] is True
                seen += 1
            if "429" in responses:
                assert responses["429"]["headers"]["Retry-After"]["schema"]["type"] == "integer"
                seen += 1
    assert seen > 50

"""core.responses.secret_response: the headers Django's never-cache helpers write, no-store and private."""

from django.http import HttpResponse
from django.utils.cache import add_never_cache_headers, patch_cache_control
from django.utils.http import parse_http_date

from core.responses import secret_response


def test_the_headers_are_djangos_never_cache_with_no_store_and_private():
    reference = HttpResponse()
    add_never_cache_headers(reference)
    patch_cache_control(reference, no_store=True, private=True)
    response = secret_response({"token": "x"}, status=201)
    assert response.status_code == 201 and response.data == {"token": "x"}
    assert response["Cache-Control"] == reference["Cache-Control"]
    # Now: the same second as the reference, or the next one.
    assert 0 <= parse_http_date(response["Expires"]) - parse_http_date(reference["Expires"]) <= 1


def test_the_rendered_secret_answer_is_the_drf_one():
    """secret_json_response (the answers given before DRF) writes what secret_response renders to."""
    from rest_framework.renderers import JSONRenderer

    from core.responses import secret_json_response

    data = {"accessToken": "a.b.c", "name": "Zoë ✓", "n": 1, "nested": {"x": [1, None, True]}}
    drf = secret_response(data, status=201)
    drf.accepted_renderer, drf.accepted_media_type, drf.renderer_context = JSONRenderer(), "application/json", {}
    drf.render()
    rendered = secret_json_response(data, status=201)
    assert rendered.status_code == 201 and rendered.content == drf.content
    for name in ("Content-Type", "Cache-Control"):
        assert rendered[name] == drf[name], name
    assert abs(parse_http_date(rendered["Expires"]) - parse_http_date(drf["Expires"])) <= 1


def test_http_date_now_is_http_date_of_this_second(monkeypatch):
    from django.utils.http import http_date

    from core import responses

    clock = [1_800_000_000.2]
    monkeypatch.setattr(responses.time, "time", lambda: clock[0])
    assert responses.http_date_now() == http_date(1_800_000_000)
    clock[0] = 1_800_000_000.9  # the same second: the text formatted before
    assert responses.http_date_now() == http_date(1_800_000_000)
    clock[0] = 1_800_000_001.0
    assert responses.http_date_now() == http_date(1_800_000_001) == "Fri, 15 Jan 2027 08:00:01 GMT"

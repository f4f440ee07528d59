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

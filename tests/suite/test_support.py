"""The helpers in tests/support/ check what they claim to check."""

import threading

import pytest
from django.http import HttpResponse, JsonResponse

from tests.support.errors import error_code, error_of
from tests.support.races import Reply, race


def test_race_starts_every_call_together_and_returns_results_in_order():
    started = threading.Barrier(3, timeout=5)  # would time out if the calls ran one after the other

    def call(n):
        started.wait()
        return n

    assert race(*(lambda n=n: call(n) for n in range(3))) == [0, 1, 2]


def test_race_fails_with_the_traceback_of_an_unexpected_exception():
    def broken():
        raise KeyError("the reason")

    with pytest.raises(AssertionError, match="the reason"):
        race(lambda: 1, broken)


def test_race_returns_an_expected_exception_in_its_place():
    error = ValueError("refused")

    def refused():
        raise error

    assert race(lambda: "won", refused, expected=(ValueError,)) == ["won", error]


def test_reply_summary_is_the_body_or_the_error_code():
    assert Reply(204, None).summary == (204, None)
    assert Reply(409, {"error": {"code": "last_owner", "message": "x"}}).summary == (409, "last_owner")


def test_error_of_accepts_the_contract_envelope():
    response = JsonResponse({"error": {"code": "validation_error", "message": "Check the fields.",
                                       "fields": {"newEmail": ["Enter a valid email address."]}}}, status=400)
    assert error_code(response, 400) == "validation_error"
    assert error_of(response, None, "validation_error", fields=["newEmail"])["fields"]


@pytest.mark.parametrize("response", [
    JsonResponse({"error": {"code": "x_y", "message": "m"}}, status=401),  # another status
    JsonResponse({"detail": "Not found."}, status=400),  # DRF's default shape
    JsonResponse({"error": {"code": "NotFound", "message": "m"}}, status=400),  # not snake_case
    JsonResponse({"error": {"code": "x", "message": ""}}, status=400),  # no message
    JsonResponse({"error": {"code": "x", "message": "m", "fields": {"new_email": ["bad"]}}}, status=400),
    JsonResponse({"error": {"code": "x", "message": "m"}, "extra": 1}, status=400),
    HttpResponse('{"error": {"code": "x", "message": "m"}}', status=400, content_type="text/html"),
], ids=["status", "shape", "code", "message", "field-name", "extra-key", "content-type"])
def test_error_of_refuses_anything_else(response):
    with pytest.raises(AssertionError):
        error_of(response, 400)

"""POST refresh's body (sessions_app.serializers._refresh_token_input): a token of the form this service issues is
taken without building RefreshInput, and is exactly what RefreshInput would return; anything else is RefreshInput's."""

import uuid

import pytest
from rest_framework.exceptions import ValidationError

from sessions_app import serializers
from sessions_app.serializers import RefreshInput, _refresh_token_input
from sessions_app import refresh_tokens


def _drf(data):
    body = RefreshInput(data=data)
    if not body.is_valid():
        return ("invalid", body.errors)
    return body.validated_data["refreshToken"]


def _ours(data):
    try:
        return _refresh_token_input(data)
    except ValidationError as exc:
        return ("invalid", exc.detail)


BODIES = [
    {"refreshToken": "mrt_abcDEF012-_"},
    {"refreshToken": "x"},
    {"refreshToken": "a" * 512},
    {"refreshToken": "a" * 513},
    {"refreshToken": " mrt_padded "},
    {"refreshToken": "mrt_with\nnewline"},
    {"refreshToken": "mrt_nul\x00"},
    {"refreshToken": "mrt_\ud800"},
    {"refreshToken": "mrt_é"},
    {"refreshToken": ""},
    {"refreshToken": "   "},
    {"refreshToken": None},
    {"refreshToken": 12},
    {"refreshToken": ["mrt_a"]},
    {"refreshToken": True},
    {},
    {"refresh_token": "mrt_a"},
    {"refreshToken": "mrt_a", "extra": 1},
    [],
    ["mrt_a"],
    "mrt_a",
    None,
    3,
]


@pytest.mark.parametrize("data", BODIES, ids=range(len(BODIES)))
def test_every_body_gets_what_refresh_input_answers(data):
    assert _ours(data) == _drf(data)


def test_an_issued_token_is_taken_without_the_serializer(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("RefreshInput built for a token of the issued form")

    monkeypatch.setattr(serializers, "RefreshInput", refuse)
    token = refresh_tokens.new(uuid.uuid4(), 0)
    assert _refresh_token_input({"refreshToken": token}) == token
    with pytest.raises(AssertionError):
        _refresh_token_input({"refreshToken": f" {token}"})

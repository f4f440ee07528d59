"""The one check of the contract's error envelope (CONTRACT.md, "Errors")."""

import json
import re

SNAKE = re.compile(r"[a-z]+(_[a-z0-9]+)*")
CAMEL_FIELD = re.compile(r"[a-z][a-zA-Z0-9]*(\.[a-z][a-zA-Z0-9]*)*")


def error_of(response, status: int | None, code: str | None = None, *, fields=None) -> dict:
    """The error object of ``response``, checked exactly: the ``status`` (``None``: any 4xx), a JSON body
    ``{"error": {"code", "message"[, "fields"]}}``, a snake_case code, a message, camelCase field names
    each with a list of messages; and, when given, the ``code`` and that ``fields`` are among the fields."""
    if status is None:
        assert 400 <= response.status_code < 500, (response.status_code, response.content[:500])
    else:
        assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = json.loads(response.content)
    assert list(body) == ["error"], body
    error = body["error"]
    assert set(error) in ({"code", "message"}, {"code", "message", "fields"}), error
    assert isinstance(error["code"], str) and SNAKE.fullmatch(error["code"]), error
    assert isinstance(error["message"], str) and error["message"], error
    if "fields" in error:
        assert isinstance(error["fields"], dict) and error["fields"], error
        for name, messages in error["fields"].items():
            assert CAMEL_FIELD.fullmatch(name), name
            assert isinstance(messages, list) and messages and all(isinstance(m, str) and m for m in messages)
    if code is not None:
        assert error["code"] == code, error
    if fields is not None:
        assert set(fields) <= set(error.get("fields", {})), error
    return error


def error_code(response, status: int | None) -> str:
    """The code of the contract's error envelope in ``response`` (checked by ``error_of``)."""
    return error_of(response, status)["code"]

"""A WSGI application that answers with the keys of the environ it was called with (JSON), for
tests/security/test_web_server.py: what a request's environ holds under the production server."""

import json


def application(environ, start_response):
    body = json.dumps(sorted(key for key in environ if isinstance(environ[key], str))).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]

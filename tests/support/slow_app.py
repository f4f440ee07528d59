"""A WSGI application that answers after ``?seconds=`` (default 1) seconds, for
tests/security/test_web_server.py: a request in flight when the server is told to stop."""

import time
from urllib.parse import parse_qs


def application(environ, start_response):
    seconds = float(parse_qs(environ.get("QUERY_STRING", "")).get("seconds", ["1"])[0])
    time.sleep(seconds)
    body = b"finished"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]

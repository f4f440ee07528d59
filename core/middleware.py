from django.conf import settings

from core.errors import json_error


class RequestBodyLimitMiddleware:
    """Refuse bodies over REQUEST_BODY_MAX_BYTES before anything reads them (413 in the envelope).

    DRF's parsers read the WSGI stream directly, so Django's DATA_UPLOAD_MAX_MEMORY_SIZE does not
    protect JSON endpoints; the declared Content-Length does (the WSGI server never hands a view
    more than it).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        raw = (request.META.get("CONTENT_LENGTH") or "").strip(" \t") or "0"
        # HTTP allows ASCII digits only; int() would also take "-1", "+5", "1_0" and "１２".
        if not (raw.isascii() and raw.isdigit()):
            return json_error("malformed_request", "Content-Length is not a number.", 400)
        if int(raw) > settings.REQUEST_BODY_MAX_BYTES:
            return json_error("request_too_large", "The request body is larger than 1 MiB.", 413)
        return self.get_response(request)

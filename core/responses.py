from django.utils.cache import add_never_cache_headers, patch_cache_control
from rest_framework.response import Response


def secret_response(data, status=200) -> Response:
    """A response that carries a token or secret: never stored by any cache."""
    response = Response(data, status=status)
    add_never_cache_headers(response)
    patch_cache_control(response, no_store=True, private=True)
    return response

"""Headers for responses answered by the JSON fast paths (GET session, JWKS), which sit in front of
django-csp's middleware: building the policy per response cost more than the rest of such a request.

The policy of a response without a nonce is the same every time, so it is built once per settings
value and set here; the response then carries exactly the header CSPMiddleware would have added.
"""

from django.conf import settings
from csp.constants import HEADER
from csp.utils import build_policy

_cached: tuple[object, str] | None = None


def static_csp() -> str:
    global _cached
    config = getattr(settings, "CONTENT_SECURITY_POLICY", None)
    if _cached is None or _cached[0] is not config:
        _cached = (config, build_policy())
    return _cached[1]


def add_csp(response):
    policy = static_csp()
    if policy:
        response[HEADER] = policy
    return response

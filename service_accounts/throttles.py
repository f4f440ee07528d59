from rest_framework.throttling import BaseThrottle

from security.ratelimit import ratelimit_hit


class IntrospectRateThrottle(BaseThrottle):
    """The ``introspect`` scope (security/app_settings.py, 6000/min by default) per service account,
    in place of the general ``api`` scope (100/min): introspection is the revocation check of every
    busy resource server, so it needs its own, higher limit."""

    def allow_request(self, request, view):
        client = getattr(request.auth, "service_client", None)
        ratelimit_hit(request=request, scope="introspect", value=f"service:{client.pk}" if client else None)
        return True

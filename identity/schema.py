from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "identity.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT (EdDSA, typ at+jwt)"}


class SessionCookieScheme(OpenApiAuthenticationExtension):
    """The browser's session cookie (docs/browser.md); unsafe methods also need X-CSRFToken."""

    target_class = "identity.authentication.SessionCookieAuthentication"
    name = "cookieAuth"

    def get_security_definition(self, auto_schema):
        from sessions_app.app_settings import app_settings

        return {"type": "apiKey", "in": "cookie", "name": app_settings.SESSION_COOKIE}

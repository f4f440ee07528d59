"""OpenAPI security schemes of sessions_app.authentication (registered in SessionsAppConfig.ready)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension

from sessions_app.app_settings import app_settings


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "sessions_app.authentication.BearerSessionAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT (EdDSA, typ at+jwt)"}


class SessionCookieScheme(OpenApiAuthenticationExtension):
    """The browser's session cookie (docs/browser.md); unsafe methods also need X-CSRFToken."""

    target_class = "sessions_app.authentication.SessionCookieAuthentication"
    name = "cookieAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": app_settings.SESSION_COOKIE}

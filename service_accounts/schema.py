"""OpenAPI for service_accounts.authentication (registered in ServiceAccountsConfig.ready).

A service token is a bearer token too: ``bearerAuth`` (sessions_app.schema) already describes it, so this
scheme adds no requirement and no component of its own."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ServiceTokenScheme(OpenApiAuthenticationExtension):
    target_class = "service_accounts.authentication.ServiceTokenAuthentication"
    name: list = []  # no security scheme component: bearerAuth covers it

    def get_security_definition(self, auto_schema):
        return []

    def get_security_requirement(self, auto_schema):
        return None

"""API paths that several test packages use."""

LOGIN = "/api/v1/auth/login"
ORGS = "/api/v1/orgs/"
SWITCH = "/api/v1/auth/switch-organization"
SERVICE_TOKEN = "/api/v1/auth/service-token"
INTROSPECT = "/api/v1/auth/introspect"

from django.contrib import admin
from django.urls import include, path

from accounts import views as accounts
from core.metrics import metrics_view
from core.views import SchemaApi
from identity.views import JwksApi
from mfa import views as mfa
from orgs import views as orgs
from passkeys import views as passkeys
from service_accounts import views as service_accounts
from sessions_app import browser_api
from security import views as security
from sessions_app import views as sessions

auth = "api/v1/auth/"

urlpatterns = [
    path(f"{auth}register", accounts.RegisterApi.as_view(), name="auth-register"),
    path(f"{auth}register-b2b", accounts.RegisterB2BApi.as_view(), name="auth-register-b2b"),
    path(f"{auth}verify-email", accounts.VerifyEmailApi.as_view(), name="auth-verify-email"),
    path(f"{auth}resend-verification", accounts.ResendVerificationApi.as_view(), name="auth-resend-verification"),
    path(f"{auth}login", sessions.LoginApi.as_view(), name="auth-login"),
    path(f"{auth}refresh", sessions.RefreshApi.as_view(), name="auth-refresh"),
    path(f"{auth}logout", sessions.LogoutApi.as_view(), name="auth-logout"),
    path(f"{auth}me", accounts.MeApi.as_view(), name="auth-me"),
    path(f"{auth}me/security-events", security.SecurityEventsApi.as_view(), name="auth-me-security-events"),
    path(f"{auth}unlock", security.UnlockApi.as_view(), name="auth-unlock"),
    path(f"{auth}not-me", security.NotMeApi.as_view(), name="auth-not-me"),
    path(f"{auth}forgot-password", accounts.ForgotPasswordApi.as_view(), name="auth-forgot-password"),
    path(f"{auth}reset-password", accounts.ResetPasswordApi.as_view(), name="auth-reset-password"),
    path(f"{auth}change-password", accounts.ChangePasswordApi.as_view(), name="auth-change-password"),
    path(f"{auth}reauthenticate", accounts.ReauthenticateApi.as_view(), name="auth-reauthenticate"),
    path(f"{auth}change-email", accounts.ChangeEmailApi.as_view(), name="auth-change-email"),
    path(f"{auth}confirm-email-change", accounts.ConfirmEmailChangeApi.as_view(), name="auth-confirm-email-change"),
    path(f"{auth}revert-email-change", accounts.RevertEmailChangeApi.as_view(), name="auth-revert-email-change"),
    path(f"{auth}mfa", mfa.MfaStatusApi.as_view(), name="auth-mfa"),
    path(f"{auth}mfa/totp/setup", mfa.TotpSetupApi.as_view(), name="auth-mfa-totp-setup"),
    path(f"{auth}mfa/totp/confirm", mfa.TotpConfirmApi.as_view(), name="auth-mfa-totp-confirm"),
    path(f"{auth}mfa/totp", mfa.TotpApi.as_view(), name="auth-mfa-totp"),
    path(f"{auth}mfa/recovery-codes", mfa.RecoveryCodesApi.as_view(), name="auth-mfa-recovery-codes"),
    path(f"{auth}mfa/verify", mfa.MfaVerifyApi.as_view(), name="auth-mfa-verify"),
    path(f"{auth}mfa/passkey/options", mfa.MfaPasskeyOptionsApi.as_view(), name="auth-mfa-passkey-options"),
    path(f"{auth}mfa/trusted-devices", mfa.TrustedDevicesApi.as_view(), name="auth-mfa-trusted-devices"),
    path(f"{auth}mfa/trusted-devices/<uuid:device_id>", mfa.TrustedDeviceApi.as_view(),
         name="auth-mfa-trusted-device"),
    path(f"{auth}passkeys", passkeys.PasskeysApi.as_view(), name="auth-passkeys"),
    path(f"{auth}passkeys/register/options", passkeys.RegisterOptionsApi.as_view(),
         name="auth-passkeys-register-options"),
    path(f"{auth}passkeys/register/verify", passkeys.RegisterVerifyApi.as_view(), name="auth-passkeys-register-verify"),
    path(f"{auth}passkeys/login/options", passkeys.LoginOptionsApi.as_view(), name="auth-passkeys-login-options"),
    path(f"{auth}passkeys/login/verify", passkeys.LoginVerifyApi.as_view(), name="auth-passkeys-login-verify"),
    path(f"{auth}passkeys/reauthenticate/options", passkeys.ReauthenticateOptionsApi.as_view(),
         name="auth-passkeys-reauthenticate-options"),
    path(f"{auth}passkeys/<uuid:passkey_id>", passkeys.PasskeyApi.as_view(), name="auth-passkey"),
    path(f"{auth}sessions/active", sessions.SessionsActiveApi.as_view(), name="auth-sessions-active"),
    path(f"{auth}sessions/revoke-others", sessions.SessionsRevokeOthersApi.as_view(),
         name="auth-sessions-revoke-others"),
    path(f"{auth}sessions/<uuid:session_id>", sessions.SessionRevokeApi.as_view(), name="auth-session-revoke"),
    path(f"{auth}session", browser_api.session_view, name="auth-session"),
    path(f"{auth}token", browser_api.token_view, name="auth-token"),
    path(f"{auth}switch-organization", sessions.SwitchOrganizationApi.as_view(), name="auth-switch-organization"),
    path(f"{auth}jwks", JwksApi.as_view(), name="auth-jwks"),
    path(f"{auth}service-token", service_accounts.ServiceTokenApi.as_view(), name="auth-service-token"),
    path(f"{auth}introspect", service_accounts.IntrospectApi.as_view(), name="auth-introspect"),
    path(".well-known/jwks.json", JwksApi.as_view(), name="well-known-jwks"),
    path("api/v1/orgs", orgs.OrganizationsNoSlashApi.as_view(), name="orgs-no-slash"),  # a metrics route label
    path("api/v1/orgs/", include("orgs.urls")),
    path("api/v1/schema/", SchemaApi.as_view(), name="api-schema"),
    path("metrics", metrics_view, name="metrics"),  # Prometheus, with AUTH_METRICS_TOKEN only (core/metrics.py)
    path("", include("oidc_provider.urls")),  # OpenID Connect: discovery, /oidc/..., /account/apps
    path("", include("web.urls")),  # browser pages; also /admin/login/ and /admin/logout/ (before the admin)
    path("admin/", admin.site.urls),
]

handler400 = "core.views.bad_request"
handler403 = "core.views.permission_denied"
handler404 = "core.views.not_found"
handler500 = "core.views.server_error"

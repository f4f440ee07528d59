from django.urls import path

from web import views

urlpatterns = [
    path("login", views.login, name="web-login"),
    path("logout", views.logout, name="web-logout"),
    path("register", views.register, name="web-register"),
    path("verify-email", views.verify_email, name="web-verify-email"),
    path("verify-email/resend", views.resend_verification, name="web-resend-verification"),
    path("forgot-password", views.forgot_password, name="web-forgot-password"),
    path("reset-password", views.reset_password, name="web-reset-password"),
    path("account", views.account, name="web-account"),
    path("account/profile", views.account_profile, name="web-account-profile"),
    path("account/password", views.account_password, name="web-account-password"),
    path("account/email", views.account_email, name="web-account-email"),
    path("account/email/confirm", views.account_email_confirm, name="web-account-email-confirm"),
    path("account/reauthenticate", views.account_reauthenticate, name="web-account-reauthenticate"),
    path("account/delete", views.account_delete, name="web-account-delete"),
    path("account/security", views.account_security, name="web-account-security"),
    path("account/unlock", views.account_unlock, name="web-account-unlock"),
    path("account/not-me", views.account_not_me, name="web-account-not-me"),
    path("account/sessions", views.account_sessions, name="web-account-sessions"),
    path("account/sessions/revoke-others", views.account_sessions_revoke_others, name="web-sessions-revoke-others"),
    path("account/sessions/<uuid:session_id>/revoke", views.account_session_revoke, name="web-session-revoke"),
    path("accounts", views.accounts_list, name="web-accounts"),
    path("accounts/switch", views.accounts_switch, name="web-accounts-switch"),
    path("accounts/sign-out", views.accounts_sign_out, name="web-accounts-sign-out"),
    path("admin/login/", views.admin_login, name="web-admin-login"),
    path("admin/logout/", views.logout, name="web-admin-logout"),
]

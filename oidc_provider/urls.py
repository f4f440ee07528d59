from django.urls import path, re_path

from oidc_provider import views

urlpatterns = [
    path(".well-known/openid-configuration", views.discovery, name="oidc-discovery"),
    re_path(r"^(?P<prefix>[A-Za-z0-9._~/-]{1,200})/\.well-known/openid-configuration$", views.discovery,
            name="oidc-discovery-issuer"),
    path("oidc/authorize", views.authorize, name="oidc-authorize"),
    path("oidc/token", views.token, name="oidc-token"),
    path("oidc/userinfo", views.userinfo, name="oidc-userinfo"),
    path("oidc/revoke", views.revoke, name="oidc-revoke"),
    path("oidc/logout", views.end_session, name="oidc-logout"),
    path("account/apps", views.account_apps, name="oidc-account-apps"),
    path("account/apps/<str:client_id>/revoke", views.account_app_revoke, name="oidc-account-app-revoke"),
]

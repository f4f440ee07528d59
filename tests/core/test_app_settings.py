"""The AppSettings base (core/app_settings.py): each app's options read on access, shared ones once."""

from datetime import timedelta

import pytest

from accounts.app_settings import app_settings as accounts_settings
from core.app_settings import AppSettings
from identity.app_settings import app_settings as identity_settings
from orgs.app_settings import app_settings as orgs_settings
from security.app_settings import app_settings as security_settings
from sessions_app.app_settings import app_settings as sessions_settings
from web.app_settings import app_settings as web_settings

EVERY_APP = [accounts_settings, identity_settings, orgs_settings, security_settings, sessions_settings, web_settings]


@pytest.mark.parametrize("app_settings", EVERY_APP)
def test_every_app_settings_object_shares_the_base(app_settings):
    assert isinstance(app_settings, AppSettings)
    for name in ("_get", "PUBLIC_URL", "REAUTH_MAX_AGE"):
        assert name not in type(app_settings).__dict__, f"{type(app_settings).__module__} redeclares {name}"


@pytest.mark.parametrize("app_settings", EVERY_APP)
def test_shared_settings_are_read_on_access(app_settings, settings):
    settings.AUTH_PUBLIC_URL = "https://auth.example.com"
    settings.AUTH_REAUTH_MAX_AGE_SECONDS = 42
    assert app_settings.PUBLIC_URL == "https://auth.example.com"
    assert app_settings.REAUTH_MAX_AGE == timedelta(seconds=42)


def test_options_come_from_the_namespace_on_access(settings):
    settings.ACCOUNTS = {"PASSWORD_RESET_TTL_SECONDS": 60}
    settings.ORGS = {}
    assert accounts_settings.PASSWORD_RESET_TTL == timedelta(seconds=60)
    assert orgs_settings.INVITATION_TTL == timedelta(hours=48)  # the default when the key is absent
    del settings.ORGS
    assert orgs_settings.INVITATION_TTL == timedelta(hours=48)  # and when the dict is absent


def test_without_a_namespace_every_option_is_its_default():
    assert AppSettings()._get("ANYTHING", 7) == 7

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


def test_an_option_read_once_is_kept_until_a_setting_changes(settings):
    options = {**settings.SESSIONS, "UPDATE_AGE_SECONDS": 60}
    settings.SESSIONS = options
    assert sessions_settings.UPDATE_AGE == timedelta(seconds=60)
    assert vars(sessions_settings)["UPDATE_AGE"] == timedelta(seconds=60)  # kept on the object
    options["UPDATE_AGE_SECONDS"] = 90  # changed behind Django's back: no setting_changed, not read again
    assert sessions_settings.UPDATE_AGE == timedelta(seconds=60)
    settings.SESSIONS = {**options, "UPDATE_AGE_SECONDS": 120}  # setting_changed: every kept option forgotten
    assert "UPDATE_AGE" not in vars(sessions_settings)
    assert sessions_settings.UPDATE_AGE == timedelta(seconds=120)


def test_a_shared_option_is_kept_and_forgotten_the_same_way(settings):
    settings.AUTH_REAUTH_MAX_AGE_SECONDS = 42
    assert web_settings.REAUTH_MAX_AGE == timedelta(seconds=42)
    assert "REAUTH_MAX_AGE" in vars(web_settings)
    settings.AUTH_REAUTH_MAX_AGE_SECONDS = 43
    assert web_settings.REAUTH_MAX_AGE == timedelta(seconds=43)


def test_a_list_or_a_dict_is_read_on_every_access(settings):
    settings.ACCOUNTS = {**getattr(settings, "ACCOUNTS", {}), "BREACH_FILE": "/tmp/breached.txt"}
    value = accounts_settings.BREACH_SOURCES
    assert isinstance(value, list)
    assert "BREACH_SOURCES" not in vars(accounts_settings)  # a caller could change a list in place
    value.append("changed in place")
    assert "changed in place" not in accounts_settings.BREACH_SOURCES


def test_the_kept_properties_keep_their_documentation():
    assert "Sliding expiry" in type(sessions_settings).UPDATE_AGE.__doc__

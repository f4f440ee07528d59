"""The argon2id cost is a setting (AUTH_PASSWORD_ARGON2_*, issue 15): its defaults, a change reaching
Django's cached hasher and rehashing at login, and the system check refusing less than OWASP's minimum."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.hashers import check_password, get_hashers, make_password

import config.settings as production_settings
from accounts.app_settings import app_settings
from accounts.checks import password_hashing_check
from accounts.hashers import ManaArgon2PasswordHasher
from accounts.models import User
from tests.factories import PASSWORD, UserFactory
from tests.hashers import FastArgon2PasswordHasher

ROOT = Path(__file__).resolve().parents[2]
REAL = ["accounts.hashers.ManaArgon2PasswordHasher"]


def _cost(settings, memory, time_cost, parallelism):
    settings.ACCOUNTS = {**settings.ACCOUNTS, "PASSWORD_ARGON2_MEMORY_KIB": memory,
                         "PASSWORD_ARGON2_TIME_COST": time_cost, "PASSWORD_ARGON2_PARALLELISM": parallelism}


def test_the_defaults_are_64_mib_2_passes_2_lanes(settings):
    env = production_settings.environment
    assert (env["AUTH_PASSWORD_ARGON2_MEMORY_KIB"], env["AUTH_PASSWORD_ARGON2_TIME_COST"],
            env["AUTH_PASSWORD_ARGON2_PARALLELISM"]) == (65536, 2, 2)
    hasher = ManaArgon2PasswordHasher()
    assert (hasher.memory_cost, hasher.time_cost, hasher.parallelism) == (65536, 2, 2)
    settings.ACCOUNTS = {}  # nothing configured: the app's own defaults, the same numbers
    assert (app_settings.PASSWORD_ARGON2_MEMORY_KIB, app_settings.PASSWORD_ARGON2_TIME_COST,
            app_settings.PASSWORD_ARGON2_PARALLELISM) == (65536, 2, 2)
    assert password_hashing_check(None) == []


def test_a_changed_setting_reaches_djangos_cached_hasher(settings):
    settings.PASSWORD_HASHERS = REAL
    hasher = get_hashers()[0]
    _cost(settings, 19456, 2, 1)
    assert get_hashers()[0] is hasher  # Django's cache was not cleared: the values are read per use
    encoded = make_password("a-long-enough-password")
    assert encoded.startswith("argon2$argon2id$v=19$m=19456,t=2,p=1$")
    _cost(settings, 12288, 3, 1)
    assert make_password("a-long-enough-password").startswith("argon2$argon2id$v=19$m=12288,t=3,p=1$")
    assert check_password("a-long-enough-password", encoded)  # the old hash still verifies
    assert hasher.must_update(encoded)


def test_the_fast_test_hasher_keeps_its_own_numbers(settings):
    _cost(settings, 19456, 2, 1)
    encoded = FastArgon2PasswordHasher().encode("a-long-enough-password", FastArgon2PasswordHasher().salt())
    assert encoded.startswith("argon2$argon2id$v=19$m=1024,t=1,p=1$")


def test_a_hash_with_the_old_cost_is_upgraded_on_login(api, settings):
    settings.PASSWORD_HASHERS = REAL
    _cost(settings, 19456, 2, 1)
    user = UserFactory(email="cost@example.com")
    User.objects.filter(pk=user.pk).update(password=make_password(PASSWORD))
    user.refresh_from_db()
    old = user.password
    assert old.startswith("argon2$argon2id$v=19$m=19456,t=2,p=1$")

    _cost(settings, 12288, 3, 1)
    wrong = api.post("/api/v1/auth/login", {"email": user.email, "password": "not-the-password"}, format="json")
    assert wrong.status_code == 401
    user.refresh_from_db()
    assert user.password == old  # a failed login changes nothing

    r = api.post("/api/v1/auth/login", {"email": user.email, "password": PASSWORD}, format="json")
    assert r.status_code == 200
    user.refresh_from_db()
    assert user.password.startswith("argon2$argon2id$v=19$m=12288,t=3,p=1$")
    assert user.check_password(PASSWORD)


@pytest.mark.parametrize(("memory", "time_cost"), [(47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5),
                                                   (7168, 10), (65536, 2)])
def test_the_check_accepts_owasps_minimum(settings, memory, time_cost):
    _cost(settings, memory, time_cost, 1)
    assert password_hashing_check(None) == []


@pytest.mark.parametrize(("memory", "time_cost", "parallelism"), [
    (47103, 1, 1), (19456, 1, 1), (19455, 2, 1), (12287, 3, 1), (9215, 4, 1), (7167, 5, 1), (7167, 9, 1),
    (65536, 0, 1), (65536, 2, 0), (65536, 2, -1), (19456, 2, 4096),
])
def test_the_check_refuses_less(settings, memory, time_cost, parallelism):
    _cost(settings, memory, time_cost, parallelism)
    assert [m.id for m in password_hashing_check(None)] == ["accounts.E007"]


def test_manage_py_check_fails_at_start_on_a_weak_setting():
    env = {**os.environ, "AUTH_PASSWORD_ARGON2_MEMORY_KIB": "8192", "AUTH_PASSWORD_ARGON2_TIME_COST": "2",
           "DJANGO_SETTINGS_MODULE": "config.settings"}
    done = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0
    assert "accounts.E007" in done.stderr and "AUTH_PASSWORD_ARGON2_MEMORY_KIB=8192" in done.stderr

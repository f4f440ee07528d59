"""argon2id with the production parameters (the suite itself runs on a fast hasher, so these tests
read the real settings module, not the pytest ``settings`` fixture)."""

from django.contrib.auth.hashers import identify_hasher, make_password

import config.settings as production_settings
from accounts.hashers import ManaArgon2PasswordHasher
from accounts.models import User
from tests.factories import PASSWORD, UserFactory
from tests.hashers import FastArgon2PasswordHasher

PREFIX = "argon2$argon2id$v=19$m=65536,t=2,p=2$"


def test_argon2id_is_the_first_hasher_in_the_settings_module():
    # config.settings is the module as deployed; the fixtures only override django.conf.settings
    assert production_settings.PASSWORD_HASHERS[0] == "accounts.hashers.ManaArgon2PasswordHasher"


def test_parameters_are_at_least_owasps_minimum():
    hasher = ManaArgon2PasswordHasher()
    assert hasher.time_cost >= 2 and hasher.memory_cost >= 19 * 1024


def test_real_hasher_stores_argon2id_with_the_chosen_parameters(settings):
    settings.PASSWORD_HASHERS = production_settings.PASSWORD_HASHERS
    encoded = make_password("a-long-enough-password")
    assert encoded.startswith(PREFIX)
    assert identify_hasher(encoded).algorithm == "argon2"
    assert ManaArgon2PasswordHasher().verify("a-long-enough-password", encoded)
    assert not ManaArgon2PasswordHasher().must_update(encoded)


def test_old_parameters_are_upgraded_on_successful_login(api, settings):
    user = UserFactory(email="old@example.com")
    old = FastArgon2PasswordHasher().encode(PASSWORD, FastArgon2PasswordHasher().salt())
    User.objects.filter(pk=user.pk).update(password=old)
    assert old.startswith("argon2$argon2id$v=19$m=1024,t=1,p=1$")

    settings.PASSWORD_HASHERS = production_settings.PASSWORD_HASHERS
    wrong = api.post("/api/v1/auth/login", {"email": user.email, "password": "not-the-password"}, format="json")
    assert wrong.status_code == 401
    user.refresh_from_db()
    assert user.password == old  # a failed login changes nothing

    r = api.post("/api/v1/auth/login", {"email": user.email, "password": PASSWORD}, format="json")
    assert r.status_code == 200
    user.refresh_from_db()
    assert user.password.startswith(PREFIX)
    assert user.check_password(PASSWORD)

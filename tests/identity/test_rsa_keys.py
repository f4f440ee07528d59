"""The RS256 keys of OpenID Connect (identity/services/rsa_keys.py): created on first use, encrypted at rest,
published in the JWKS, rotated with the Ed25519 keys, revocable by kid."""

from __future__ import annotations

import json

from django.test import Client

from identity.models import RsaSigningKey
from identity.services import keys
from identity.services.rsa_keys import rsa_signing_key_current, rsa_verification_key


def jwks_kids() -> dict[str, str]:
    return {k["kid"]: k["kty"] for k in json.loads(keys.jwks_json())["keys"]}


def test_no_rsa_key_until_openid_connect_is_used():
    assert set(jwks_kids().values()) == {"OKP"}
    assert not RsaSigningKey.objects.exists()


def test_first_use_creates_an_encrypted_key_published_at_once():
    keys.jwks_json()
    signer = rsa_signing_key_current()
    assert signer.created
    keys.signing_keys_changed()
    row = RsaSigningKey.objects.get()
    assert row.kid == signer.kid and jwks_kids()[row.kid] == "RSA"
    private_d = signer.key.as_dict(private=True)["d"]
    assert private_d not in row.private_encrypted  # stored encrypted (core.crypto), never as is
    assert not rsa_signing_key_current().created  # the same key signs on


def test_rotation_rotates_the_rsa_key_too_and_keeps_the_old_one_published():
    old = rsa_signing_key_current().kid
    keys.signing_key_rotate(reason="test")
    new = rsa_signing_key_current().kid
    assert new != old
    assert {old, new} <= set(jwks_kids())


def test_revoking_an_rsa_kid_removes_it_and_a_successor_signs():
    old = rsa_signing_key_current().kid
    result = keys.signing_key_revoke(kids=[old], reason="test")
    assert result.revoked == [old]
    assert old not in jwks_kids() and rsa_verification_key(old) is None
    successor = rsa_signing_key_current()
    assert successor.kid != old and not successor.created  # the rotation made it, published at once
    assert successor.kid in jwks_kids()


def test_the_command_revokes_an_rsa_kid():
    from io import StringIO

    from django.core.management import call_command

    old = rsa_signing_key_current().kid
    call_command("rotate_signing_key", "--revoke", old, stdout=StringIO())
    assert RsaSigningKey.objects.get(kid=old).revoked_at is not None
    assert old not in {k["kid"] for k in Client().get("/.well-known/jwks.json").json()["keys"]}

"""A software WebAuthn authenticator for API tests: a real key pair (ES256 on P-256, or Ed25519), an
attestation of format "none" and assertions, built byte for byte as an authenticator and a browser do
(clientDataJSON, authenticatorData with its flags and counter, the signature over authenticatorData ||
SHA-256(clientDataJSON)). Every knob a test needs to break one rule is a keyword argument."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from passkeys.app_settings import app_settings

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SoftAuthenticator:
    """One credential on one software authenticator. ``alg``: "ES256" or "EdDSA"."""

    def __init__(self, alg: str = "ES256"):
        self.alg = alg
        if alg == "ES256":
            self.key = ec.generate_private_key(ec.SECP256R1())
        elif alg == "EdDSA":
            self.key = ed25519.Ed25519PrivateKey.generate()
        else:
            raise ValueError(alg)
        self.credential_id = os.urandom(32)
        self.sign_count = 0
        self.user_handle: str | None = None  # base64url, set by create()

    @property
    def id(self) -> str:
        return b64(self.credential_id)

    def cose_key(self) -> bytes:
        if self.alg == "ES256":
            numbers = self.key.public_key().public_numbers()
            return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                                -3: numbers.y.to_bytes(32, "big")})
        raw = self.key.public_key().public_bytes_raw()
        return cbor2.dumps({1: 1, 3: -8, -1: 6, -2: raw})

    def _sign(self, data: bytes) -> bytes:
        if self.alg == "ES256":
            return self.key.sign(data, ec.ECDSA(hashes.SHA256()))
        return self.key.sign(data)

    @staticmethod
    def _client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}).encode()

    def create(self, options: dict, *, origin: str | None = None, rp_id: str | None = None, uv: bool = True,
               challenge: str | None = None, kind: str = "webauthn.create") -> dict:
        """navigator.credentials.create(options).toJSON(): a RegistrationResponseJSON."""
        rp_id = rp_id if rp_id is not None else options["rp"]["id"]
        origin = origin if origin is not None else app_settings.ORIGINS[0]
        flags = UP | AT | (UV if uv else 0) | BE | BS
        auth_data = (hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + struct.pack(">I", self.sign_count)
                     + b"\x00" * 16 + struct.pack(">H", len(self.credential_id)) + self.credential_id
                     + self.cose_key())
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data(kind, challenge if challenge is not None else options["challenge"], origin)
        self.user_handle = options["user"]["id"]
        return {"id": self.id, "rawId": self.id, "type": "public-key", "authenticatorAttachment": "platform",
                "clientExtensionResults": {},
                "response": {"clientDataJSON": b64(client_data), "attestationObject": b64(attestation),
                             "transports": ["internal", "hybrid"]}}

    def get(self, options: dict, *, origin: str | None = None, rp_id: str | None = None, uv: bool = True,
            up: bool = True, counter: int | None = None, user_handle: str | None = "", challenge: str | None = None,
            kind: str = "webauthn.get", tamper: bool = False) -> dict:
        """navigator.credentials.get(options).toJSON(): an AuthenticationResponseJSON. The counter
        advances by one unless ``counter`` is given; ``user_handle`` "" sends this credential's own,
        None sends none."""
        rp_id = rp_id if rp_id is not None else options.get("rpId", app_settings.RP_ID)
        origin = origin if origin is not None else app_settings.ORIGINS[0]
        if counter is None:
            self.sign_count += 1
            counter = self.sign_count
        flags = (UP if up else 0) | (UV if uv else 0) | BE | BS
        auth_data = hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + struct.pack(">I", counter)
        client_data = self._client_data(kind, challenge if challenge is not None else options["challenge"], origin)
        signature = self._sign(auth_data + hashlib.sha256(client_data).digest())
        if tamper:
            client_data = client_data.replace(b'"crossOrigin": false', b'"crossOrigin": false ')
        response = {"clientDataJSON": b64(client_data), "authenticatorData": b64(auth_data),
                    "signature": b64(signature)}
        handle = self.user_handle if user_handle == "" else user_handle
        if handle is not None:
            response["userHandle"] = handle
        return {"id": self.id, "rawId": self.id, "type": "public-key", "authenticatorAttachment": "platform",
                "clientExtensionResults": {}, "response": response}

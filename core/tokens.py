"""Hashing of one-time tokens, refresh tokens, browser keys and client secrets before they are stored."""

import hashlib


def hash_token(raw: str) -> str:
    """One-time tokens are high-entropy random strings, so a plain SHA-256 is the right hash."""
    return hashlib.sha256(raw.encode()).hexdigest()

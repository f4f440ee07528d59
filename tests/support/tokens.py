"""Reading a compact JWS without verifying it (the tests look at what the provider put in)."""

import base64
import json


def parts(token: str):
    """``(header, claims)`` of a compact JWS."""
    header, payload, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (json.loads(base64.urlsafe_b64decode(pad(header))), json.loads(base64.urlsafe_b64decode(pad(payload))))


def age_spend(token: str, seconds: float) -> None:
    """Move the spend of refresh token ``token`` ``seconds`` into the past: its SpentRefreshToken row (a
    switch of organization spent it, or it has no tag) or, for a tagged token spent by a refresh, the
    rotation that spent it (the session's ``refresh_rotated_at``: sessions_app.refresh_tokens)."""
    from datetime import timedelta

    from django.utils import timezone

    from core.tokens import hash_token
    from sessions_app import refresh_tokens
    from sessions_app.models import DeviceSession, SpentRefreshToken

    when = timezone.now() - timedelta(seconds=seconds)
    recorded = SpentRefreshToken.objects.filter(token_hash=hash_token(token)).update(spent_at=when)
    if not recorded and refresh_tokens.is_ours(token):
        DeviceSession.objects.filter(pk=refresh_tokens.session_id(token)).update(refresh_rotated_at=when)

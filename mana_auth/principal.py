"""Who a verified access token speaks for."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Principal:
    """The verified identity behind an access token.

    ``user_id`` is ``sub`` (for a service token: the service account's id), ``session_id`` is ``sid``
    (None for tokens without a session), ``org``/``org_role`` are set while an organization is active.
    ``claims`` holds every claim as the provider signed it. It quacks enough like a Django user
    (``is_authenticated``, ``pk``) for DRF's permission and throttle classes.
    """

    user_id: str
    email: str | None
    role: str | None
    session_id: str | None
    org: str | None
    org_role: str | None
    claims: dict
    token: str = field(default="", repr=False, compare=False)

    is_authenticated = True
    is_anonymous = False
    is_active = True

    @property
    def pk(self) -> str:
        return self.user_id

    id = pk

    @property
    def jti(self) -> str | None:
        return self.claims.get("jti")

    @property
    def expires_at(self) -> int:
        """``exp`` as a Unix timestamp."""
        return self.claims["exp"]

    @property
    def is_service(self) -> bool:
        return self.role == "service"

    def has_role(self, *roles: str) -> bool:
        return self.role in roles

    def __str__(self) -> str:
        return self.email or self.user_id

"""Create (or reset) the verified bench user with the production password hasher.

    DJANGO_SETTINGS_MODULE=config.settings .venv/bin/python bench/bench_user.py EMAIL PASSWORD
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.hashers import get_hasher  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import User  # noqa: E402


def main(email: str, password: str) -> None:
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create_user(email, password, name="Bench", email_verified_at=timezone.now())
    else:
        user.set_password(password)  # rehash with the current production parameters
        user.email_verified_at = user.email_verified_at or timezone.now()
        user.is_active = True
        user.save(update_fields=["password", "email_verified_at", "is_active"])
    hasher = get_hasher()  # the production hasher: first in PASSWORD_HASHERS
    assert not hasher.must_update(user.password), "the stored hash does not use the production parameters"
    p = hasher.decode(user.password)
    print(f"bench user {email}: verified; {type(hasher).__name__} {p['variety']} "
          f"m={p['memory_cost']} KiB t={p['time_cost']} p={p['parallelism']}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

from identity.services import keys


def test_jwks_is_served_from_memory_without_queries(api, django_assert_num_queries, settings):
    # Not counted here: the signing-key generation check, at most one query per interval and process
    # (tests/identity/test_key_generation.py).
    settings.IDENTITY = {**settings.IDENTITY, "KEY_GENERATION_CHECK_SECONDS": 3600}
    first = api.get("/.well-known/jwks.json")
    assert first.status_code == 200 and first["Cache-Control"] == "public, max-age=300"
    with django_assert_num_queries(0):
        again = api.get("/api/v1/auth/jwks")
    assert again.content == first.content
    assert [k["kid"] for k in again.json()["keys"]] == [k.kid for k in keys.published_keys()]


def test_rotation_in_this_process_is_published_at_once(api):
    before = {k["kid"] for k in api.get("/.well-known/jwks.json").json()["keys"]}
    new = keys.signing_key_rotate()
    after = {k["kid"] for k in api.get("/.well-known/jwks.json").json()["keys"]}
    assert after == before | {new.kid}


def test_jwks_is_not_rate_limited_per_client(api, settings):
    """A public, cacheable document: every resource server polls it from a few addresses."""
    settings.SECURITY = {**settings.SECURITY, "RATE_LIMITS": {**settings.SECURITY["RATE_LIMITS"], "api": "3/m"}}
    # Through the DRF view (and its per-client throttle) the 4th request would be refused.
    for _ in range(20):
        assert api.get("/.well-known/jwks.json").status_code == 200

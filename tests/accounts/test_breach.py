"""The breached-password check (accounts/breach.py): its sources, AUTH_BREACH_MAX_COUNT, the on-error
policy, the validator, the system checks, and that login never runs it. Sources are local: a range
server on 127.0.0.1 started by the test, files written by the test, Django's common list."""

from __future__ import annotations

import logging
import random

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.checks import run_checks
from django.core.exceptions import ValidationError

from accounts import breach
from accounts.checks import breach_sources_check
from accounts.validators import BreachedPasswordValidator
from tests.accounts.breach_helpers import (  # noqa: F401  (fixtures)
    BREACHED,
    CLEAN,
    breach_file,
    breach_settings,
    breached_file,
    range_server,
    sha1,
)
from tests.conftest import login
from tests.factories import UserFactory


def _codes(password):
    try:
        validate_password(password)
    except ValidationError as exc:
        return [e.code for e in exc.error_list]
    return []


# --- off by default ----------------------------------------------------------------------------------------

def test_off_when_no_source_is_configured(settings):
    assert settings.ACCOUNTS["BREACH_SOURCES"] == [] and not settings.ACCOUNTS["BREACH_FILE"]
    assert not settings.ACCOUNTS["BREACH_RANGE_URL"]
    assert breach.password_breach_check(password=BREACHED) is None
    assert _codes(BREACHED) == []
    assert BreachedPasswordValidator().get_help_text() == ""


def test_the_validator_is_part_of_the_one_policy(settings):
    names = [v["NAME"] for v in settings.AUTH_PASSWORD_VALIDATORS]
    assert names[-1] == "accounts.validators.BreachedPasswordValidator"


def test_configuring_a_file_or_url_turns_those_sources_on(breach_settings, tmp_path, range_server):
    breach_settings(file=str(tmp_path / "x.txt"), range_url=range_server.url)
    assert breach.app_settings.BREACH_SOURCES == ["file", "range"]  # local first
    breach_settings(sources=["Common", " range "])
    assert breach.app_settings.BREACH_SOURCES == ["common", "range"]  # explicit list, explicit order


# --- range API (k-anonymity) ---------------------------------------------------------------------------------

def test_range_hit_sends_only_the_five_character_prefix(breach_settings, range_server):
    range_server.counts = {BREACHED: 7}
    breach_settings(range_url=range_server.url)
    verdict = breach.password_breach_check(password=BREACHED)
    assert verdict == breach.BreachVerdict(breached=True, source="range", count=7)
    [request] = range_server.requests
    assert request["path"] == f"/range/{sha1(BREACHED)[:5]}"
    assert request["headers"]["Add-Padding"] == "true"
    assert "mana-core-auth" in request["headers"]["User-Agent"]
    sent = str(request)
    assert BREACHED not in sent and sha1(BREACHED)[5:] not in sent and sha1(BREACHED)[5:].lower() not in sent


def test_range_miss_and_padding_lines_do_not_refuse(breach_settings, range_server):
    range_server.counts = {BREACHED: 7}
    breach_settings(range_url=range_server.url + "/")  # a trailing slash is fine
    assert breach.password_breach_check(password=CLEAN) == breach.BreachVerdict(breached=False)
    assert range_server.requests[0]["path"] == f"/range/{sha1(CLEAN)[:5]}"
    range_server.counts = {BREACHED: 0}  # a padding line for exactly this suffix
    assert not breach.password_breach_check(password=BREACHED).breached


@pytest.mark.parametrize("max_count, refused", [(0, True), (6, True), (7, False), (100, False)])
def test_max_count(breach_settings, range_server, max_count, refused):
    range_server.counts = {BREACHED: 7}
    breach_settings(range_url=range_server.url, max_count=max_count)
    assert breach.password_breach_check(password=BREACHED).breached is refused
    assert ("password_breached" in _codes(BREACHED)) is refused


@pytest.mark.parametrize("mode", ["status:500", "status:429", "status:404", "garbage", "redirect", "huge", "slow"])
def test_range_failures_are_reported_not_raised(breach_settings, range_server, mode):
    range_server.counts = {BREACHED: 7}
    range_server.mode = mode
    breach_settings(range_url=range_server.url, timeout_seconds=0.3)
    assert breach.password_breach_check(password=BREACHED) == breach.BreachVerdict(breached=False, failed=("range",))


def test_range_unreachable(breach_settings, range_server):
    breach_settings(range_url="http://127.0.0.1:1/range")  # nothing listens on port 1
    assert breach.password_breach_check(password=BREACHED).failed == ("range",)


def test_on_error_allow_accepts_and_deny_refuses(breach_settings, range_server):
    range_server.mode = "status:503"
    breach_settings(range_url=range_server.url)
    assert _codes(BREACHED) == []  # allow is the default
    breach_settings(on_error="deny")
    assert _codes(BREACHED) == ["password_breach_check_failed"]
    range_server.mode = "ok"
    assert _codes(CLEAN) == []


def test_failures_are_logged_without_the_password_or_its_hash(breach_settings, range_server, caplog):
    range_server.mode = "garbage"
    breach_settings(range_url=range_server.url, on_error="deny")
    with caplog.at_level(logging.DEBUG):
        _codes(BREACHED)
    assert "could not answer" in caplog.text
    digest = sha1(BREACHED)
    for secret in (BREACHED, digest, digest[5:], digest.lower(), digest[5:].lower(), digest[:5]):
        assert secret not in caplog.text


# --- local file --------------------------------------------------------------------------------------------------

def test_file_binary_search_finds_every_entry_and_nothing_else(tmp_path, breach_settings):
    rng = random.Random(14)
    known = {f"{rng.getrandbits(160):040X}": rng.randint(1, 10**6) for _ in range(3000)}
    path = breach_file(tmp_path / "big.txt", known, newline="\r\n")  # HIBP's files end lines with CRLF
    breach_settings(file=str(path))
    ordered = sorted(known)
    for digest in ordered[:50] + ordered[-50:] + rng.sample(ordered, 200):
        assert breach._file_count(digest) == known[digest]
    for _ in range(300):
        digest = f"{rng.getrandbits(160):040X}"
        assert breach._file_count(digest) == (known.get(digest) or 0)
    assert breach._file_count("0" * 40) == 0 and breach._file_count("F" * 40) == 0  # before the first, after the last


def test_file_lookup_reads_a_few_lines_not_the_file(tmp_path, breach_settings, monkeypatch):
    rng = random.Random(3)
    known = {f"{rng.getrandbits(160):040X}": 1 for _ in range(20000)}
    breach_settings(file=str(breach_file(tmp_path / "big.txt", known)))
    reads = []

    class Counting:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def readline(self):
            reads.append(1)
            return self.handle.readline()

        def __getattr__(self, name):
            return getattr(self.handle, name)

    monkeypatch.setattr(breach, "open", lambda *a, **k: Counting(open(*a, **k)), raising=False)
    assert breach._file_count(sorted(known)[12345]) == 1
    assert 0 < len(reads) < 120  # about 2 * log2(file size), not 20,000


def test_file_blank_lines_anywhere_are_skipped(tmp_path, breach_settings):
    rng = random.Random(7)
    known = sorted(f"{rng.getrandbits(160):040X}" for _ in range(400))
    path = tmp_path / "gappy.txt"
    path.write_text("\n" + "".join(f"{d}:{i + 1}\n" + ("\n" * (i % 3)) for i, d in enumerate(known)))
    breach_settings(file=str(path))
    assert [breach._file_count(d) for d in known] == list(range(1, len(known) + 1))


def test_file_tiny_files(tmp_path, breach_settings):
    for entries in ({BREACHED: 5}, {CLEAN: 1}):
        breach_settings(file=str(breach_file(tmp_path / "one.txt", entries)))
        assert breach.password_breach_check(password=BREACHED).breached is (BREACHED in entries)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    breach_settings(file=str(empty))
    assert breach.password_breach_check(password=BREACHED) == breach.BreachVerdict(breached=False)


def test_file_of_bare_hashes_refuses_at_any_max_count(tmp_path, breach_settings):
    path = breach_file(tmp_path / "bare.txt", {"0" * 40: None, BREACHED: None}, lower=True)
    with open(path, "a") as handle:
        handle.write("\n\n\n")  # blank lines after the last entry, which is the one looked up
    breach_settings(file=str(path), max_count=10**9)
    verdict = breach.password_breach_check(password=BREACHED)
    assert verdict.breached and verdict.count == breach.COUNT_UNKNOWN
    assert not breach.password_breach_check(password=CLEAN).breached


def test_file_counts_and_max_count(breached_file, breach_settings):
    assert breach.password_breach_check(password=BREACHED) == breach.BreachVerdict(breached=True, source="file",
                                                                                   count=42)
    breach_settings(max_count=42)
    assert not breach.password_breach_check(password=BREACHED).breached


@pytest.mark.parametrize("content", ["not a hash at all\n", "ABC:1\n", f"{sha1(BREACHED)}:many\n"])
def test_malformed_file_is_a_failure(tmp_path, breach_settings, content):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    breach_settings(file=str(path))
    assert breach.password_breach_check(password=BREACHED).failed == ("file",)


def test_missing_file_is_a_failure_and_deny_refuses(tmp_path, breach_settings):
    breach_settings(file=str(tmp_path / "gone.txt"))
    assert breach.password_breach_check(password=CLEAN).failed == ("file",)
    assert _codes(CLEAN) == []
    breach_settings(on_error="deny")
    assert _codes(CLEAN) == ["password_breach_check_failed"]


# --- Django's common-passwords list ------------------------------------------------------------------------------

def test_common_list_source(breach_settings):
    breach_settings(sources=["common"], max_count=10**9)
    verdict = breach.password_breach_check(password="  Password1234 ")  # compared as Django compares
    assert verdict.breached and verdict.source == "common" and verdict.count == breach.COUNT_UNKNOWN
    assert not breach.password_breach_check(password=BREACHED).breached


# --- several sources -----------------------------------------------------------------------------------------------

def test_sources_are_asked_in_order_until_one_knows_the_password(breached_file, breach_settings, range_server):
    range_server.counts = {CLEAN: 2}
    breach_settings(range_url=range_server.url)
    assert breach.password_breach_check(password=BREACHED).source == "file"
    assert range_server.requests == []  # the local file answered first
    assert breach.password_breach_check(password=CLEAN).source == "range"


def test_a_failing_source_does_not_hide_a_hit_in_another(tmp_path, breach_settings, range_server):
    range_server.counts = {BREACHED: 2}
    breach_settings(file=str(tmp_path / "gone.txt"), range_url=range_server.url, on_error="allow")
    verdict = breach.password_breach_check(password=BREACHED)
    assert verdict == breach.BreachVerdict(breached=True, source="range", count=2, failed=("file",))
    assert _codes(BREACHED) == ["password_breached"]


def test_unknown_source_name_is_a_failure_not_a_crash(breach_settings):
    breach_settings(sources=["nope"])
    assert breach.password_breach_check(password=CLEAN).failed == ("nope",)
    breach_settings(sources=["range"])  # named without a URL
    assert breach.password_breach_check(password=CLEAN).failed == ("range",)


def test_validator_error_and_help_text(breached_file):
    with pytest.raises(ValidationError) as exc:
        BreachedPasswordValidator().validate(BREACHED)
    assert exc.value.code == "password_breached" and "data breach" in exc.value.messages[0]
    BreachedPasswordValidator().validate(CLEAN)
    assert "data breach" in BreachedPasswordValidator().get_help_text()


# --- login never runs it -----------------------------------------------------------------------------------------

def test_login_is_never_checked_or_blocked(api, breach_settings, range_server):
    """A user whose password became known later still signs in, even with on-error deny and a dead
    source: the check belongs to setting a password only."""
    user = UserFactory(password=BREACHED)
    range_server.counts = {BREACHED: 1000}
    breach_settings(range_url=range_server.url, on_error="deny")
    assert login(api, user.email, password=BREACHED)["user"]["id"] == str(user.pk)
    range_server.mode = "status:500"
    authed = login(api, user.email, password=BREACHED)
    assert range_server.requests == []
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {authed['accessToken']}")
    assert api.post("/api/v1/auth/reauthenticate", {"password": BREACHED}, format="json").status_code == 200
    assert range_server.requests == []


# --- system checks -------------------------------------------------------------------------------------------------

def _ids():
    return sorted(m.id for m in breach_sources_check(None))


def test_checks_clean_when_off_and_when_well_configured(breached_file, breach_settings, settings):
    assert _ids() == []
    settings.DEBUG = False
    breach_settings(range_url="https://api.pwnedpasswords.com/range", sources=["file", "range", "common"])
    assert _ids() == []


def test_check_missing_or_unset_file(tmp_path, breach_settings):
    breach_settings(file=str(tmp_path / "gone.txt"))
    assert _ids() == ["accounts.E002"]
    breach_settings(file=str(tmp_path))  # a directory is not the file
    assert _ids() == ["accounts.E002"]
    breach_settings(file="", sources=["file"])
    assert _ids() == ["accounts.E002"]


def test_check_range_url(breach_settings, settings):
    settings.DEBUG = False
    breach_settings(range_url="http://hibp-mirror.internal/range")
    assert _ids() == ["accounts.W001"]
    settings.DEBUG = True
    assert _ids() == []
    for bad in ["ftp://mirror/range", "api.pwnedpasswords.com/range"]:
        breach_settings(range_url=bad)
        assert _ids() == ["accounts.E003"]
    breach_settings(range_url="", sources=["range"])
    assert _ids() == ["accounts.E003"]


def test_check_other_options(breached_file, breach_settings, settings):
    breach_settings(sources=["file", "rnage"], on_error="maybe", max_count=-1, timeout_seconds=0)
    assert _ids() == ["accounts.E001", "accounts.E004", "accounts.E005", "accounts.E006"]
    breach_settings(sources=["file"], on_error="deny", max_count=0, timeout_seconds=2)
    settings.AUTH_PASSWORD_VALIDATORS = [v for v in settings.AUTH_PASSWORD_VALIDATORS
                                         if v["NAME"] != "accounts.validators.BreachedPasswordValidator"]
    assert _ids() == ["accounts.W002"]


def test_checks_are_registered(tmp_path, breach_settings):
    breach_settings(file=str(tmp_path / "gone.txt"))
    assert "accounts.E002" in [m.id for m in run_checks()]

"""Breached passwords: is this password known from a data breach?

``password_breach_check`` asks the configured sources in order (``AUTH_BREACH_SOURCES``) and returns
a verdict; ``accounts.validators.BreachedPasswordValidator`` turns the verdict into the password
policy's error, so every entry point that runs the policy (API, pages, admin, commands) runs this
too. It never runs at login. Sources:

* ``range``: a k-anonymity range API (Have I Been Pwned's, or a mirror of it): ``GET {url}/{PREFIX}``
  with the first 5 hex digits of the password's SHA-1 answers ``SUFFIX:COUNT`` lines for every
  known hash with that prefix. Only those 5 characters leave the process.
* ``file``: a local text file of ``SHA1`` or ``SHA1:COUNT`` lines sorted by hash (the format of
  HIBP's downloadable "ordered by hash" list), searched by binary search without loading it.
* ``common``: Django's list of common passwords (the one ``CommonPasswordValidator`` uses).

A source that cannot answer raises ``BreachSourceError``; the verdict then names it in ``failed``
and ``AUTH_BREACH_ON_ERROR`` decides. Nothing here logs a password, its hash or a hash suffix.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import logging
import re
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass

from accounts.app_settings import app_settings

logger = logging.getLogger(__name__)

SOURCES = ("file", "range", "common")
ON_ERROR_CHOICES = ("allow", "deny")
# What a source that keeps no counts (the common list, a file of bare hashes) reports for a hit:
# more than any AUTH_BREACH_MAX_COUNT, so such a hit always refuses.
COUNT_UNKNOWN = sys.maxsize
RANGE_PREFIX_LENGTH = 5
RANGE_MAX_BYTES = 1024 * 1024  # an HIBP answer with padding is ~40 KB
USER_AGENT = "mana-core-auth breached-password check"

_RANGE_LINE = re.compile(rb"^([0-9A-Fa-f]{35}):([0-9]{1,12})$")
_FILE_KEY = re.compile(rb"^[0-9A-F]{40}$")


class BreachSourceError(Exception):
    """A source could not answer. The message is safe to log: it never contains the hash."""


@dataclass(frozen=True)
class BreachVerdict:
    breached: bool
    source: str | None = None  # the source that knows the password
    count: int = 0  # how often it has seen it (COUNT_UNKNOWN when it keeps no counts)
    failed: tuple[str, ...] = ()  # sources that could not answer


def password_sha1(password: str) -> str:
    """Upper-case hex SHA-1 of the UTF-8 password: the key every breach corpus uses."""
    return hashlib.sha1(password.encode("utf-8", "surrogatepass"), usedforsecurity=False).hexdigest().upper()


# --- sources ---------------------------------------------------------------------------------------------

class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # a redirect is an answer we do not trust: it fails like an error status


def _range_count(sha1: str) -> int:
    url = app_settings.BREACH_RANGE_URL
    if not url:
        raise BreachSourceError("AUTH_BREACH_RANGE_URL is not set")
    if not url.lower().startswith(("https://", "http://")):
        raise BreachSourceError("AUTH_BREACH_RANGE_URL is not an http(s) URL")
    prefix, suffix = sha1[:RANGE_PREFIX_LENGTH], sha1[RANGE_PREFIX_LENGTH:].encode()
    request = urllib.request.Request(f"{url}/{prefix}", method="GET", headers={
        "User-Agent": USER_AGENT, "Add-Padding": "true", "Accept": "text/plain"})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=app_settings.BREACH_TIMEOUT) as response:
            if response.status != 200:
                raise BreachSourceError(f"range API answered HTTP {response.status}")
            body = response.read(RANGE_MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise BreachSourceError(f"range API answered HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise BreachSourceError(f"range API unreachable: {type(exc.reason).__name__}") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:  # timeouts, resets, broken HTTP
        raise BreachSourceError(f"range API failed: {type(exc).__name__}") from None
    if len(body) > RANGE_MAX_BYTES:
        raise BreachSourceError("range API answer is too large")
    count = 0
    for line in body.splitlines():
        line = line.strip()
        if not line:
            continue
        match = _RANGE_LINE.match(line)
        if match is None:
            raise BreachSourceError("range API answer is not SUFFIX:COUNT lines")
        if match.group(1).upper() == suffix:
            count = int(match.group(2))  # 0 for the padding lines that Add-Padding mixes in
    return count


def _line_at_or_after(handle, position: int) -> bytes:
    """The first non-blank line that starts at or after byte ``position`` (b"" at the end)."""
    if position == 0:
        handle.seek(0)
    else:
        handle.seek(position - 1)
        handle.readline()  # the rest of the line holding byte position-1 (just b"\n" if it ends there)
    while True:
        line = handle.readline()
        if not line or line.strip():
            return line.strip()


def _file_key(line: bytes) -> bytes:
    key = line.split(b":", 1)[0].strip().upper()
    if not _FILE_KEY.match(key):
        raise BreachSourceError("breach file has a line that is not SHA1[:COUNT]")
    return key


def _file_count(sha1: str) -> int:
    path = app_settings.BREACH_FILE
    if not path:
        raise BreachSourceError("AUTH_BREACH_FILE is not set")
    target = sha1.encode()
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            low, high = 0, handle.tell()
            # The smallest byte offset whose next line sorts at or after the target (lines are sorted).
            while low < high:
                middle = (low + high) // 2
                line = _line_at_or_after(handle, middle)
                if not line or _file_key(line) >= target:
                    high = middle
                else:
                    low = middle + 1
            line = _line_at_or_after(handle, low)
    except OSError as exc:
        raise BreachSourceError(f"breach file unreadable: {type(exc).__name__}") from None
    if not line or _file_key(line) != target:
        return 0
    _, _, count = line.partition(b":")
    if not count.strip():
        return COUNT_UNKNOWN
    try:
        return int(count)
    except ValueError:
        raise BreachSourceError("breach file has a count that is not a number") from None


@functools.cache
def _common_passwords() -> frozenset[str]:
    from django.contrib.auth.password_validation import CommonPasswordValidator

    return frozenset(CommonPasswordValidator().passwords)


def _common_count(password: str) -> int:
    # Compared as CommonPasswordValidator compares: lower-cased, surrounding spaces removed.
    return COUNT_UNKNOWN if password.lower().strip() in _common_passwords() else 0


def _source_count(name: str, password: str, sha1: str) -> int:
    if name == "range":
        return _range_count(sha1)
    if name == "file":
        return _file_count(sha1)
    if name == "common":
        return _common_count(password)
    raise BreachSourceError(f"unknown source {name!r} in AUTH_BREACH_SOURCES")


# --- the check ---------------------------------------------------------------------------------------------

def breach_check_enabled() -> bool:
    return bool(app_settings.BREACH_SOURCES)


def password_breach_check(*, password: str) -> BreachVerdict | None:
    """Ask each configured source in order; the first that has seen the password more than
    ``AUTH_BREACH_MAX_COUNT`` times decides. None when no source is configured (the check is off)."""
    sources = app_settings.BREACH_SOURCES
    if not sources:
        return None
    sha1 = password_sha1(password)
    max_count = app_settings.BREACH_MAX_COUNT
    failed = []
    for name in sources:
        try:
            count = _source_count(name, password, sha1)
        except BreachSourceError as exc:
            logger.warning("breached-password source %r could not answer: %s", name, exc)
            failed.append(name)
            continue
        if count > max_count:
            return BreachVerdict(breached=True, source=name, count=count, failed=tuple(failed))
    return BreachVerdict(breached=False, failed=tuple(failed))

"""Layer rules (issue 10): ``core`` imports nothing of ours, and no app imports ``config`` (the
composition root: settings, urls, wsgi, celery; only manage.py, the servers and tests load it)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"accounts", "audit", "config", "core", "flows", "identity", "notifications", "orgs", "security",
               "service_accounts", "sessions_app", "web", "mana_auth", "tests", "bench", "examples"}


def imported_packages(path: Path) -> set[str]:
    """Top-level packages a module imports, function-local imports included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("path", sorted((ROOT / "core").rglob("*.py")), ids=lambda p: p.name)
def test_core_imports_nothing_first_party(path):
    assert not (imported_packages(path) & FIRST_PARTY) - {"core"}


def test_no_app_imports_config():
    offenders = []
    for package in sorted(FIRST_PARTY - {"config", "tests", "bench", "examples", "mana_auth"}):
        for path in (ROOT / package).rglob("*.py"):
            if "config" in imported_packages(path):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []

"""config/settings.py reads every environment variable in one table (``environment``, issue 10), and
the table holds the contract's variables (CONTRACT.md "Configuration") and docs/configuration.md's."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = {"DATABASE_URL", "REDIS_URL", "EMAIL_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "AUTH_ISSUER",
            "AUTH_AUDIENCE", "AUTH_TRUSTED_PROXY_COUNT", "AUTH_PUBLIC_URL", "AUTH_REFRESH_GRACE_SECONDS",
            "AUTH_REAUTH_MAX_AGE_SECONDS"}


def _table():
    tree = ast.parse((ROOT / "config/settings.py").read_text())
    table = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                 and getattr(node.targets[0], "id", "") == "environment")
    return tree, table


def test_the_environment_is_read_only_in_the_table():
    tree, table = _table()
    inside = {id(node) for node in ast.walk(table)}
    readers = [node for node in ast.walk(tree) if isinstance(node, ast.Attribute)
               and getattr(node.value, "id", "") == "env" and node.attr != "db_url_config"]
    readers += [node for node in ast.walk(tree) if isinstance(node, ast.Compare)
                and any(getattr(c, "id", "") == "env" for c in node.comparators)]
    assert readers and all(id(node) in inside for node in readers), [node.lineno for node in readers
                                                                     if id(node) not in inside]


def test_every_key_is_the_variable_its_reader_reads():
    _, table = _table()
    for key, value in zip(table.keys, table.values, strict=True):
        call = value.body if isinstance(value, ast.IfExp) else value
        assert call.args[0].value == key.value


def test_the_table_holds_the_contract_and_every_documented_variable():
    _, table = _table()
    names = {key.value for key in table.keys}
    variables = (ROOT / "docs/configuration.md").read_text().split("## App options")[0]
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)`", variables, re.M))
    documented |= {"AUTH_AUDIENCE"}  # one row with AUTH_ISSUER
    assert CONTRACT <= names
    assert names == documented

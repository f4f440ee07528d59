"""Fewer indexes on the rows every refresh writes.

A refresh rewrites its session row with a new ``refresh_token_hash`` (an indexed column, so never a HOT
update: every index of the table gets a new entry) and inserts a spent-token row. Four of those indexes
served nothing:

- the ``varchar_pattern_ops`` copies Django adds on PostgreSQL next to each unique CharField, for ``LIKE
  'prefix%'`` queries outside the C locale (``refresh_token_hash``, ``browser_key_hash``, the spent
  ``token_hash``): these columns hold SHA-256 hashes and are only ever compared for equality, which the
  unique index itself answers;
- the single-column index of the session's ``user_id``: ``sessions_user_alive`` (user, revoked_at,
  expires_at) starts with the same column and serves every lookup by user (the sessions list, "sign out
  everywhere", the cascade of a deleted user).

docs/benchmarks.md (seventh pass) has the figures. Nothing to do on SQLite (no pattern indexes there).
"""

from django.db import migrations, models
from django.conf import settings

# (model name, field name) of the hash columns whose pattern index goes
_PATTERN_INDEXED = (("devicesession", "refresh_token_hash"), ("devicesession", "browser_key_hash"),
                    ("spentrefreshtoken", "token_hash"))


def _pattern_indexes(schema_editor, model) -> list[tuple[str, str]]:
    """(index name, column) of the ``varchar_pattern_ops`` indexes of ``model``'s table."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.relname, a.attname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "JOIN pg_class t ON t.oid = x.indrelid JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = x.indkey[0] "
            "JOIN pg_opclass o ON o.oid = x.indclass[0] "
            "WHERE t.relname = %s AND x.indnatts = 1 AND o.opcname = 'varchar_pattern_ops'",
            [model._meta.db_table])
        return cursor.fetchall()


def _hash_columns(apps, schema_editor):
    """(model, field, the names of its column's pattern indexes) of each hash column above."""
    for model_name, field_name in _PATTERN_INDEXED:
        model = apps.get_model("sessions_app", model_name)
        field = model._meta.get_field(field_name)
        yield model, field, [name for name, column in _pattern_indexes(schema_editor, model) if column == field.column]


def drop_pattern_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for _, _, names in _hash_columns(apps, schema_editor):
        for name in names:
            schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


def create_pattern_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for model, field, names in _hash_columns(apps, schema_editor):
        if not names:
            schema_editor.execute(schema_editor._create_like_index_sql(model, field))


class Migration(migrations.Migration):

    dependencies = [
        ('sessions_app', '0011_refresh_count'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='devicesession',
            name='user',
            field=models.ForeignKey(db_index=False, on_delete=models.deletion.CASCADE, related_name='device_sessions',
                                    to=settings.AUTH_USER_MODEL),
        ),
        migrations.RunPython(drop_pattern_indexes, create_pattern_indexes),
    ]

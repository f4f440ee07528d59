"""Refresh tokens name their session: a refresh becomes an update in place.

A refresh token is now ``mrt_`` + the session's id + 256 random bits, found by the session's primary key
and checked against ``refresh_secret_hash``, a column without an index. A refresh then changes no indexed
column of its row, so PostgreSQL writes the new version next to the old one on the same page with no new
index entry (a HOT update) instead of an entry in each of the table's indexes. The table keeps a tenth of
each page free for those versions (fillfactor 90: new pages only; existing ones gain it as they are
rewritten).

``refresh_token_hash`` and its unique index stay for tokens issued before this release: such a token is
still found by its hash, and its first refresh replaces it with a token of the new format. Nothing to do on
SQLite (no fillfactor there). docs/benchmarks.md (ninth pass) has the figures.
"""

from django.db import migrations, models

TABLE = "sessions_app_devicesession"


def set_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE {schema_editor.quote_name(TABLE)} SET (fillfactor = 90)")


def reset_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE {schema_editor.quote_name(TABLE)} RESET (fillfactor)")


class Migration(migrations.Migration):

    dependencies = [
        ('sessions_app', '0012_hot_path_indexes'),
    ]

    operations = [
        migrations.AddField(
            model_name='devicesession',
            name='refresh_secret_hash',
            field=models.CharField(blank=True, default='', max_length=64),
        ),
        migrations.RunPython(set_fillfactor, reset_fillfactor),
    ]

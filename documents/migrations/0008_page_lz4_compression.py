"""On PostgreSQL, the pages' large columns compressed with LZ4 rather than pglz (issue 22). SQLite: nothing.

A page's text, words (JSON), boxes and lines are each a few kilobytes, so PostgreSQL compresses them into
TOAST as they are written; pglz made that a third of the time `manage.py ingest --sync` waits on the
database (1,164 pages: 0.80 s with pglz, 0.49 s with LZ4, best of 3; docs/performance.md, ingestion). Only
pages written from now on are compressed with LZ4; those stored before stay readable as they are. A server
built without LZ4 keeps pglz (the migration says so and goes on).
"""

from django.db import migrations

COLUMNS = ("text", "words", "boxes", "lines")


def _compression(schema_editor, method: str) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    alter = ", ".join(f"ALTER COLUMN {column} SET COMPRESSION {method}" for column in COLUMNS)
    schema_editor.execute(f"""
        DO $$ BEGIN
            ALTER TABLE documents_page {alter};
        EXCEPTION WHEN feature_not_supported THEN
            RAISE NOTICE 'this PostgreSQL has no LZ4: pages stay compressed with pglz';
        END $$""")


def pages_lz4(apps, schema_editor):
    _compression(schema_editor, "lz4")


def pages_pglz(apps, schema_editor):
    _compression(schema_editor, "pglz")


class Migration(migrations.Migration):
    dependencies = [("documents", "0007_page_text_vector")]
    operations = [migrations.RunPython(pages_lz4, pages_pglz)]

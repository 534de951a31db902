"""Trigram indexes for the queue's search by name and text (PostgreSQL only).

The queue searches with `icontains`, i.e. UPPER(column) LIKE UPPER('%words%'), which no B-tree index can
serve: on 10,000 documents the scan took ~400 ms, with these GIN indexes ~20 ms (docs/performance.md).
pg_trgm ships with PostgreSQL; creating the extension needs the CREATE privilege on the database. Where it
cannot be created the migration leaves a warning and search still works, by scanning. SQLite: nothing.
"""

import logging

from django.db import migrations, transaction

logger = logging.getLogger(__name__)

INDEXES = [
    ("documents_page_text_trgm", "documents_page", "UPPER(text)"),
    ("documents_document_name_trgm", "documents_document", "UPPER(original_name)"),
]


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except Exception as exc:  # no privilege: search keeps working without the index
        logger.warning("pg_trgm is not available (%s); document search will scan", exc)
        return
    for name, table, expression in INDEXES:
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin ({expression} gin_trgm_ops)")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _table, _expression in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("documents", "0002_document_attempts_document_heartbeat_at_and_more")]
    operations = [migrations.RunPython(create, drop)]

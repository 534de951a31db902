"""Full-text search of the pages' text for the queue (PostgreSQL only; documents.selectors.document_search_filter).

The trigram index of 0003 served a substring test of the text well for rare strings, but a common word
matched nearly every page and PostgreSQL rechecked all of their text (350 ms on 10,000 documents). A GIN
index of the `simple` text-search vector answers word-prefix queries from the index alone. It replaces the
text trigram index (no other query tests the pages' text); the name trigram index stays. SQLite: nothing.
"""

from django.db import migrations, transaction

# The first 100,000 characters of a page: a tsvector holds at most 1 MB, and a page of 100,000 distinct
# words exceeds it (PostgreSQL then refuses the row, i.e. the ingestion). 100,000 characters stay under
# 1 MB whatever the words; a page is rarely over 10,000. documents.selectors.PageTextVector is the same
# expression, character for character, so that PostgreSQL uses the index.
VECTOR = "to_tsvector('simple'::regconfig, left(COALESCE(text, ''::text), 100000))"


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"CREATE INDEX IF NOT EXISTS documents_page_text_fts ON documents_page USING gin ({VECTOR})")
    schema_editor.execute("DROP INDEX IF EXISTS documents_page_text_trgm")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP INDEX IF EXISTS documents_page_text_fts")
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute("CREATE INDEX IF NOT EXISTS documents_page_text_trgm ON documents_page "
                                  "USING gin (UPPER(text) gin_trgm_ops)")
    except Exception:  # pg_trgm was never available: 0003 made no index either
        pass


class Migration(migrations.Migration):
    dependencies = [("documents", "0005_document_least_confidence")]
    operations = [migrations.RunPython(create, drop)]

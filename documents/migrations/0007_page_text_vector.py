"""On PostgreSQL, the pages' search vector stored (issue 18). SQLite: nothing.

documents 0006 indexed the expression to_tsvector(...) of each page's text; for a word found on most pages
PostgreSQL's planner prefers a sequential scan, which evaluates that expression, i.e. re-tokenises every
page (5.5 s for 4,000 pages of 400 words on the shared test machine; 500 ms on 2,945 pages in production).
A generated column holds the same vector, computed once when the page is written: a scan reads it, the GIN
index on it answers selective searches (documents.selectors.PageTextVector names it).
"""

from django.db import migrations

# documents 0006's expression, character for character (the same vector as before, stored).
VECTOR = "to_tsvector('simple'::regconfig, left(COALESCE(text, ''::text), 100000))"


def store_page_vectors(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"ALTER TABLE documents_page ADD COLUMN IF NOT EXISTS text_vector tsvector "
                          f"GENERATED ALWAYS AS ({VECTOR}) STORED")
    schema_editor.execute("CREATE INDEX IF NOT EXISTS documents_page_text_vector ON documents_page "
                          "USING gin (text_vector)")
    schema_editor.execute("DROP INDEX IF EXISTS documents_page_text_fts")


def unstore_page_vectors(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"CREATE INDEX IF NOT EXISTS documents_page_text_fts ON documents_page USING gin ({VECTOR})")
    schema_editor.execute("ALTER TABLE documents_page DROP COLUMN IF EXISTS text_vector")


class Migration(migrations.Migration):
    dependencies = [("documents", "0006_page_text_search_index")]
    operations = [migrations.RunPython(store_page_vectors, unstore_page_vectors)]

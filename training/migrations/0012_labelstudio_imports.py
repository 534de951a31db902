"""Label Studio imports (the webhook's job rows); and, on PostgreSQL, the pages' search vector stored.

The stored vector is a documents table change made here because this was the one migration number free
(issue 18): it belongs in a documents migration, and can move there as is. documents 0006 indexed the
expression to_tsvector(...) of each page's text; for a word found on most pages PostgreSQL's planner
prefers a sequential scan, which evaluates that expression, i.e. re-tokenises every page (5.5 s for 4,000
pages of 400 words on the shared test machine; 500 ms on 2,945 pages in production). A generated column
holds the same vector, computed once when the page is written: a scan reads it, the GIN index on it
answers selective searches (documents.selectors.PageTextVector names it). SQLite: nothing.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

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

    dependencies = [
        ('documents', '0006_page_text_search_index'),
        ('training', '0011_adapted_base'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='LabelStudioImport',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('job_id', models.CharField(blank=True, max_length=64, verbose_name='RQ job id')),
                ('worker', models.CharField(blank=True, max_length=255, verbose_name='worker')),
                ('attempts', models.PositiveSmallIntegerField(default=0, verbose_name='attempts')),
                ('queued_at', models.DateTimeField(blank=True, null=True, verbose_name='queued at')),
                ('heartbeat_at', models.DateTimeField(blank=True, null=True, verbose_name='last heartbeat')),
                ('status', models.CharField(choices=[('queued', 'queued'), ('running', 'importing'), ('imported', 'imported'), ('superseded', 'superseded'), ('failed', 'failed')], default='queued', max_length=16, verbose_name='status')),
                ('error', models.TextField(blank=True, verbose_name='reason')),
                ('action', models.CharField(max_length=32, verbose_name='Label Studio action')),
                ('task', models.CharField(blank=True, max_length=64, verbose_name='Label Studio task')),
                ('name', models.CharField(max_length=255, verbose_name='document name')),
                ('text', models.TextField(verbose_name='text')),
                ('spans', models.JSONField(default=list, verbose_name='entities')),
                ('words', models.PositiveIntegerField(verbose_name='words')),
                ('text_sha256', models.CharField(max_length=64, verbose_name='SHA-256 of the text')),
                ('content_sha256', models.CharField(max_length=64, verbose_name='SHA-256 of the text, name and entities')),
                ('document_created', models.BooleanField(default=False, verbose_name='document created')),
                ('entities', models.PositiveIntegerField(blank=True, null=True, verbose_name='entities stored')),
                ('created_at', models.DateTimeField(auto_now_add=True, verbose_name='received at')),
                ('finished_at', models.DateTimeField(blank=True, null=True, verbose_name='finished at')),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='sent by')),
                ('document', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='documents.document', verbose_name='document')),
            ],
            options={
                'verbose_name': 'Label Studio import',
                'verbose_name_plural': 'Label Studio imports',
                'ordering': ['-id'],
                'indexes': [models.Index(fields=['text_sha256', '-id'], name='labelstudio_import_text')],
            },
        ),
        migrations.RunPython(store_page_vectors, unstore_page_vectors),
    ]

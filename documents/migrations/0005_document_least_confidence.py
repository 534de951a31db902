"""The least entity confidence moves onto Document, beside reviewed_at: the queue's default order (reviewed
last, then least confident first, then newest) is then on one table, and on PostgreSQL an index in exactly
that order serves the queue's pages without sorting every document per request (docs/performance.md).
SQLite cannot declare NULLS FIRST in an index; there the queue sorts, as before. The values are copied
from annotation.DocumentReview by annotation's migration 0006."""

from django.db import migrations, models

INDEX = "documents_document_queue_order"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {INDEX} ON documents_document "
                              "(reviewed_at ASC NULLS FIRST, least_confidence ASC NULLS LAST, id DESC)")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("documents", "0004_ocr")]
    operations = [
        migrations.AddField(
            model_name="document", name="least_confidence",
            field=models.FloatField(blank=True, null=True, verbose_name="least entity confidence"),
        ),
        migrations.RunPython(create, drop),
    ]

"""Issue 17, the events' hash chain: every AnnotationEvent and DocumentClassEvent stores the hash of the
document's previous event of its kind and its own (annotation.chain). The events already written get theirs
here, chained per document in id order; going back clears them.

The hashing is copied, not imported, so this migration keeps computing what it computed on the day it was
written; tests/annotation/test_chain.py checks that it equals annotation.chain.event_hash.
"""

import hashlib
import json
from datetime import UTC

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

BATCH = 2000

FIELDS = {
    "AnnotationEvent": ("annotation", (("document", "document_id"), ("annotation", "annotation_id"),
                                       ("action", "action"), ("before", "before"), ("after", "after"),
                                       ("user", "user_id"), ("model_version", "model_version_id"),
                                       ("base_revision", "base_revision"), ("created_at", "created_at"))),
    "DocumentClassEvent": ("class", (("document", "document_id"), ("classification", "classification_id"),
                                     ("action", "action"), ("before", "before"), ("after", "after"),
                                     ("user", "user_id"), ("model_version", "model_version_id"),
                                     ("created_at", "created_at"))),
}


def _hash(event, kind: str, fields, previous: str) -> str:
    content = {key: getattr(event, attribute) for key, attribute in fields}
    content["created_at"] = content["created_at"].astimezone(UTC).isoformat(timespec="microseconds")
    content["kind"] = kind
    content["previous_hash"] = previous
    canonical = json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def chain_events(apps, schema_editor):
    connection = schema_editor.connection
    for name, (kind, fields) in FIELDS.items():
        model = apps.get_model("annotation", name)
        # One UPDATE per event through executemany (pipelined by psycopg): bulk_update's CASE over thousands
        # of ids is several times slower on PostgreSQL.
        sql = (f"UPDATE {connection.ops.quote_name(model._meta.db_table)} SET previous_hash = %s, hash = %s "
               "WHERE id = %s")
        pending, document, previous = [], None, ""
        for event in model.objects.order_by("document_id", "id").iterator(chunk_size=BATCH):
            if event.document_id != document:
                document, previous = event.document_id, ""
            link = previous
            previous = _hash(event, kind, fields, link)
            pending.append((link, previous, event.pk))
            if len(pending) >= BATCH:
                with connection.cursor() as cursor:
                    cursor.executemany(sql, pending)
                pending = []
        if pending:
            with connection.cursor() as cursor:
                cursor.executemany(sql, pending)


def unchain_events(apps, schema_editor):
    for name in FIELDS:
        apps.get_model("annotation", name).objects.update(previous_hash="", hash="")


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0006_least_confidence_on_document"),
        ("training", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]
    operations = [
        migrations.AddField(
            model_name="annotationevent",
            name="hash",
            field=models.CharField(blank=True, editable=False, max_length=64, verbose_name="hash"),
        ),
        migrations.AddField(
            model_name="annotationevent",
            name="previous_hash",
            field=models.CharField(blank=True, editable=False, max_length=64, verbose_name="previous event's hash"),
        ),
        migrations.AddField(
            model_name="documentclassevent",
            name="hash",
            field=models.CharField(blank=True, editable=False, max_length=64, verbose_name="hash"),
        ),
        migrations.AddField(
            model_name="documentclassevent",
            name="previous_hash",
            field=models.CharField(blank=True, editable=False, max_length=64, verbose_name="previous event's hash"),
        ),
        migrations.AlterField(
            model_name="annotationevent",
            name="created_at",
            field=models.DateTimeField(db_index=True, default=django.utils.timezone.now, editable=False,
                                       verbose_name="time"),
        ),
        migrations.AlterField(
            model_name="annotationevent",
            name="model_version",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT,
                                    related_name="+", to="training.modelversion", verbose_name="model version"),
        ),
        migrations.AlterField(
            model_name="annotationevent",
            name="user",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT,
                                    related_name="+", to=settings.AUTH_USER_MODEL, verbose_name="user"),
        ),
        migrations.AlterField(
            model_name="documentclassevent",
            name="created_at",
            field=models.DateTimeField(db_index=True, default=django.utils.timezone.now, editable=False,
                                       verbose_name="time"),
        ),
        migrations.AlterField(
            model_name="documentclassevent",
            name="model_version",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT,
                                    related_name="+", to="training.modelversion", verbose_name="model version"),
        ),
        migrations.AlterField(
            model_name="documentclassevent",
            name="user",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT,
                                    related_name="+", to=settings.AUTH_USER_MODEL, verbose_name="user"),
        ),
        migrations.AddIndex(
            model_name="documentclassevent",
            index=models.Index(fields=["document", "id"], name="annotation_classevent_chain"),
        ),
        migrations.RunPython(chain_events, unchain_events, elidable=False),
    ]

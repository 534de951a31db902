"""Issue 17, version provenance: a dataset snapshot records the events it read (the highest id and each
document's newest), and a model version the dataset SHA-256 and the events it learnt from
(training.services.provenance). Versions published before get what is still known: their run's dataset
hash, or their feedback update's record (older snapshots recorded no events)."""

from django.db import migrations, models


def backfill(apps, schema_editor):
    ModelVersion = apps.get_model("training", "ModelVersion")
    FeedbackUpdate = apps.get_model("training", "FeedbackUpdate")
    feedback = {u.model_version_id: (u.pk, u.learnt_from or {})
                for u in FeedbackUpdate.objects.exclude(model_version=None)}
    for version in ModelVersion.objects.select_related("run", "run__dataset"):
        run = version.run
        if version.pk in feedback:
            update, record = feedback[version.pk]
            heads = {str(k): int(v) for k, v in (record.get("events") or {}).items()}
            version.learnt_from = {
                "event_kind": "class" if version.task == "text_classification" else "annotation",
                "heads": heads, "feedback_update": update,
                **{k: record[k] for k in ("replay_documents", "validation_documents") if k in record}}
            version.events_through = max(heads.values(), default=None)
        else:
            version.dataset_sha256 = run.dataset_hash or (run.dataset.sha256 if run.dataset_id else "")
        version.save(update_fields=["dataset_sha256", "events_through", "learnt_from"])


class Migration(migrations.Migration):
    dependencies = [("training", "0008_evaluation_sets_and_gates")]
    operations = [
        migrations.AddField(
            model_name="dataset",
            name="event_heads",
            field=models.JSONField(blank=True, default=dict, verbose_name="newest event per document"),
        ),
        migrations.AddField(
            model_name="dataset",
            name="events_through",
            field=models.PositiveBigIntegerField(blank=True, null=True, verbose_name="newest event read"),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="dataset_sha256",
            field=models.CharField(blank=True, max_length=64, verbose_name="dataset SHA-256"),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="events_through",
            field=models.PositiveBigIntegerField(blank=True, null=True, verbose_name="learnt from events up to"),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="learnt_from",
            field=models.JSONField(blank=True, default=dict, verbose_name="learnt from"),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=False),
    ]

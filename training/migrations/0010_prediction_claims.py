"""Issue 17: prediction claims, one per (document, model version); while one is queued or running the
document waits for its predictions and its review cannot be finished."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("documents", "0006_page_text_search_index"),
        ("training", "0009_version_provenance"),
    ]
    operations = [
        migrations.CreateModel(
            name="PredictionClaim",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("job_id", models.CharField(blank=True, max_length=64, verbose_name="RQ job id")),
                ("worker", models.CharField(blank=True, max_length=255, verbose_name="worker")),
                ("attempts", models.PositiveSmallIntegerField(default=0, verbose_name="attempts")),
                ("queued_at", models.DateTimeField(blank=True, null=True, verbose_name="queued at")),
                ("heartbeat_at", models.DateTimeField(blank=True, null=True, verbose_name="last heartbeat")),
                ("purpose", models.CharField(choices=[("ingest", "pre-annotation after ingestion"),
                                                      ("rescore", "re-scoring by a new version")],
                                             max_length=16, verbose_name="purpose")),
                ("status", models.CharField(choices=[("queued", "queued"), ("running", "predicting"),
                                                     ("done", "written"), ("skipped", "skipped"),
                                                     ("failed", "failed")],
                                            default="queued", max_length=16, verbose_name="status")),
                ("error", models.TextField(blank=True, verbose_name="reason")),
                ("written", models.PositiveIntegerField(blank=True, null=True, verbose_name="predictions written")),
                ("created_at", models.DateTimeField(auto_now_add=True, verbose_name="created at")),
                ("finished_at", models.DateTimeField(blank=True, null=True, verbose_name="finished at")),
                ("document", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                               related_name="prediction_claims", to="documents.document",
                                               verbose_name="document")),
                ("version", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                              related_name="prediction_claims", to="training.modelversion",
                                              verbose_name="model version")),
            ],
            options={
                "verbose_name": "prediction claim",
                "verbose_name_plural": "prediction claims",
                "ordering": ["-id"],
                "indexes": [models.Index(fields=["status"], name="prediction_claim_status")],
                "constraints": [models.UniqueConstraint(fields=("document", "version"), name="prediction_claim_once")],
            },
        ),
    ]

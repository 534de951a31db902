"""Issue 21: adapted base models (continued masked-language-model pre-training on the ingested pages), and
the adapted base a training run started from."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0010_prediction_claims"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="AdaptedBase",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("job_id", models.CharField(blank=True, max_length=64, verbose_name="RQ job id")),
                ("worker", models.CharField(blank=True, max_length=255, verbose_name="worker")),
                ("attempts", models.PositiveSmallIntegerField(default=0, verbose_name="attempts")),
                ("queued_at", models.DateTimeField(blank=True, null=True, verbose_name="queued at")),
                ("heartbeat_at", models.DateTimeField(blank=True, null=True, verbose_name="last heartbeat")),
                ("number", models.PositiveIntegerField(blank=True, null=True, unique=True, verbose_name="number")),
                ("base_model", models.CharField(max_length=500, verbose_name="base model")),
                ("status", models.CharField(choices=[("queued", "queued"), ("running", "running"),
                                                     ("published", "published"), ("failed", "failed"),
                                                     ("cancelled", "cancelled")],
                                            default="queued", max_length=16, verbose_name="status")),
                ("trigger", models.CharField(choices=[("manual", "started by hand"), ("growth", "the corpus grew")],
                                             default="manual", max_length=16, verbose_name="trigger")),
                ("error", models.TextField(blank=True, verbose_name="error")),
                ("hyperparameters", models.JSONField(default=dict, verbose_name="hyperparameters")),
                ("corpus_documents", models.JSONField(blank=True, default=list, verbose_name="corpus documents")),
                ("corpus_sha256", models.CharField(blank=True, max_length=64, verbose_name="corpus SHA-256")),
                ("pages", models.PositiveIntegerField(blank=True, null=True, verbose_name="pages")),
                ("words", models.PositiveBigIntegerField(blank=True, null=True, verbose_name="words")),
                ("heldout_pages", models.PositiveIntegerField(blank=True, null=True, verbose_name="held-out pages")),
                ("steps", models.PositiveIntegerField(blank=True, null=True, verbose_name="steps")),
                ("perplexity_before", models.FloatField(blank=True, null=True,
                                                        verbose_name="held-out perplexity before")),
                ("perplexity_after", models.FloatField(blank=True, null=True, verbose_name="held-out perplexity after")),
                ("metrics", models.JSONField(blank=True, default=dict, verbose_name="metrics")),
                ("artefact", models.CharField(blank=True, max_length=500, verbose_name="artefact location in storage")),
                ("device", models.CharField(blank=True, max_length=128, verbose_name="device")),
                ("progress", models.JSONField(blank=True, default=dict, verbose_name="progress")),
                ("checkpoint", models.CharField(blank=True, max_length=500, verbose_name="checkpoint in storage")),
                ("checkpoint_step", models.PositiveIntegerField(blank=True, null=True, verbose_name="checkpoint step")),
                ("created_at", models.DateTimeField(auto_now_add=True, verbose_name="created at")),
                ("started_at", models.DateTimeField(blank=True, null=True, verbose_name="started at")),
                ("finished_at", models.DateTimeField(blank=True, null=True, verbose_name="finished at")),
                ("cancelled_by", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                                   related_name="+", to=settings.AUTH_USER_MODEL,
                                                   verbose_name="cancelled by")),
                ("created_by", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                                 related_name="+", to=settings.AUTH_USER_MODEL,
                                                 verbose_name="started by")),
            ],
            options={
                "verbose_name": "adapted base model",
                "verbose_name_plural": "adapted base models",
                "ordering": ["-created_at", "-id"],
                "constraints": [models.UniqueConstraint(condition=models.Q(("status__in", ["queued", "running"])),
                                                        fields=("base_model",),
                                                        name="adapted_base_one_active_per_base")],
            },
        ),
        migrations.AddField(
            model_name="trainingrun",
            name="adapted_base",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT,
                                    related_name="runs", to="training.adaptedbase",
                                    verbose_name="started from adapted base"),
        ),
    ]

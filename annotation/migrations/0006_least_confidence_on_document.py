"""DocumentReview.confidence moves to Document.least_confidence (documents migration 0005): copied, then
removed here, so the fact stays in one place."""

from django.db import migrations
from django.db.models import OuterRef, Subquery


def copy_forward(apps, schema_editor):
    Document = apps.get_model("documents", "Document")
    DocumentReview = apps.get_model("annotation", "DocumentReview")
    Document.objects.filter(review__confidence__isnull=False).update(least_confidence=Subquery(
        DocumentReview.objects.filter(document=OuterRef("pk")).values("confidence")[:1]))


def copy_back(apps, schema_editor):
    Document = apps.get_model("documents", "Document")
    DocumentReview = apps.get_model("annotation", "DocumentReview")
    DocumentReview.objects.update(confidence=Subquery(
        Document.objects.filter(pk=OuterRef("document")).values("least_confidence")[:1]))


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0005_review_workspace"),
        ("documents", "0005_document_least_confidence"),
    ]
    operations = [
        migrations.RunPython(copy_forward, copy_back),
        migrations.RemoveIndex(model_name="documentreview", name="annotation__confide_014cda_idx"),
        migrations.RemoveField(model_name="documentreview", name="confidence"),
    ]

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from documents.models import Document


class EntityType(models.Model):
    name = models.CharField(_("name"), max_length=64, unique=True)
    description = models.CharField(_("description"), max_length=255, blank=True)
    color = models.CharField(_("colour"), max_length=7, default="#ffd54f")

    class Meta:
        ordering = ["name"]
        verbose_name = _("entity type")
        verbose_name_plural = _("entity types")

    def __str__(self) -> str:
        return self.name


class Annotation(models.Model):
    """The current state of one entity: a projection of its AnnotationEvents."""

    class Status(models.TextChoices):
        PREDICTED = "predicted", _("predicted")
        ACCEPTED = "accepted", _("accepted")
        REJECTED = "rejected", _("rejected")

    class Source(models.TextChoices):
        MODEL = "model", _("model")
        HUMAN = "human", _("human")

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="annotations")
    start = models.PositiveIntegerField(_("first word"))
    end = models.PositiveIntegerField(_("end word (exclusive)"))
    label = models.ForeignKey(EntityType, on_delete=models.PROTECT, related_name="annotations",
                              verbose_name=_("label"))
    text = models.TextField(_("text"))
    status = models.CharField(_("status"), max_length=16, choices=Status.choices)
    source = models.CharField(_("source"), max_length=16, choices=Source.choices)
    score = models.FloatField(_("model confidence"), null=True, blank=True)
    model_version = models.ForeignKey(
        "training.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="annotations", verbose_name=_("model version"),
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("reviewer"),
    )
    # Bumped on every change; the review workspace will use it for optimistic concurrency.
    revision = models.PositiveIntegerField(_("revision"), default=1)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["document", "start", "id"]
        verbose_name = _("annotation")
        verbose_name_plural = _("annotations")
        indexes = [models.Index(fields=["document", "status"])]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="annotation_span_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.label}: {self.text[:40]}"


class AnnotationEvent(models.Model):
    """Append-only history of every change to an annotation (the source of truth)."""

    class Action(models.TextChoices):
        PREDICT = "predict", _("predicted by model")
        CREATE = "create", _("created")
        ACCEPT = "accept", _("accepted")
        REJECT = "reject", _("rejected")
        RELABEL = "relabel", _("relabelled")
        IMPORT = "import", _("imported")

    annotation = models.ForeignKey(Annotation, on_delete=models.CASCADE, related_name="events")
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="annotation_events")
    action = models.CharField(_("action"), max_length=16, choices=Action.choices)
    before = models.JSONField(_("before"), null=True, blank=True)
    after = models.JSONField(_("after"), null=True, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("user"),
    )
    model_version = models.ForeignKey(
        "training.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("model version"),
    )
    created_at = models.DateTimeField(_("time"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("annotation event")
        verbose_name_plural = _("annotation events")

    def __str__(self) -> str:
        return f"{self.get_action_display()} #{self.annotation_id}"


# Document classes (text classification): one label per document, predicted and reviewed like an entity -----

class DocumentClass(models.Model):
    """A class a whole document can have (text classification); the label set beside EntityType."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    description = models.CharField(_("description"), max_length=255, blank=True)
    color = models.CharField(_("colour"), max_length=7, default="#b0bec5")

    class Meta:
        ordering = ["name"]
        verbose_name = _("document class")
        verbose_name_plural = _("document classes")

    def __str__(self) -> str:
        return self.name


class DocumentClassification(models.Model):
    """A document's current class: a projection of its DocumentClassEvents (annotation.services_classes)."""

    document = models.OneToOneField(Document, on_delete=models.CASCADE, related_name="classification",
                                    verbose_name=_("document"))
    label = models.ForeignKey(DocumentClass, on_delete=models.PROTECT, related_name="classifications",
                              verbose_name=_("class"))
    status = models.CharField(_("status"), max_length=16, choices=Annotation.Status.choices)
    source = models.CharField(_("source"), max_length=16, choices=Annotation.Source.choices)
    score = models.FloatField(_("model confidence"), null=True, blank=True)
    model_version = models.ForeignKey(
        "training.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("model version"),
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("reviewer"),
    )
    revision = models.PositiveIntegerField(_("revision"), default=1)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["document"]
        verbose_name = _("document classification")
        verbose_name_plural = _("document classifications")
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"{self.document_id}: {self.label} ({self.status})"


class DocumentClassEvent(models.Model):
    """Append-only history of a document's class (the source of truth, as AnnotationEvent is for entities)."""

    class Action(models.TextChoices):
        PREDICT = "predict", _("predicted by model")
        SET = "set", _("chosen")
        ACCEPT = "accept", _("accepted")
        REJECT = "reject", _("rejected")
        IMPORT = "import", _("imported")

    classification = models.ForeignKey(DocumentClassification, on_delete=models.CASCADE, related_name="events")
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="class_events")
    action = models.CharField(_("action"), max_length=16, choices=Action.choices)
    before = models.JSONField(_("before"), null=True, blank=True)
    after = models.JSONField(_("after"), null=True, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("user"),
    )
    model_version = models.ForeignKey(
        "training.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("model version"),
    )
    created_at = models.DateTimeField(_("time"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("document class event")
        verbose_name_plural = _("document class events")

    def __str__(self) -> str:
        return f"{self.get_action_display()} #{self.classification_id}"

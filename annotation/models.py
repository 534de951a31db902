from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from documents.models import Document

color_validator = RegexValidator(r"^#[0-9a-fA-F]{6}$", _("Enter a colour as #rrggbb, e.g. #ffd54f."))
shortcut_validator = RegexValidator(r"^[1-9]$", _("A shortcut is one digit from 1 to 9."))


class EntityType(models.Model):
    """One label of the entity schema. Events keep the type's id and its name at the time, so renaming a
    type keeps its history readable."""

    name = models.CharField(_("name"), max_length=64, unique=True)
    description = models.CharField(_("description"), max_length=255, blank=True)
    color = models.CharField(_("colour"), max_length=7, default="#ffd54f", validators=[color_validator])
    shortcut = models.CharField(_("keyboard shortcut"), max_length=1, blank=True,
                                validators=[shortcut_validator],
                                help_text=_("A digit (1–9) that gives the selected entity this type."))

    class Meta:
        ordering = ["name"]
        verbose_name = _("entity type")
        verbose_name_plural = _("entity types")
        constraints = [
            models.UniqueConstraint(fields=["shortcut"], condition=~Q(shortcut=""),
                                    name="entitytype_unique_shortcut"),
        ]

    def __str__(self) -> str:
        return self.name


class Annotation(models.Model):
    """The current state of one entity: a projection of its AnnotationEvents."""

    class Status(models.TextChoices):
        PREDICTED = "predicted", _("predicted")
        ACCEPTED = "accepted", _("accepted")
        REJECTED = "rejected", _("rejected")
        DELETED = "deleted", _("deleted")

    # Entities that no longer claim their words (shown struck through, or not at all once deleted).
    INACTIVE = (Status.REJECTED, Status.DELETED)

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
    # Bumped on every change. Every change says which revision it was based on and is refused (a conflict)
    # when that is no longer the current one: nobody overwrites a change they have not seen.
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
        RESIZE = "resize", _("span changed")
        DELETE = "delete", _("deleted")
        REVERT = "revert", _("reverted")
        MERGE = "merge", _("type merged")
        IMPORT = "import", _("imported")
        # A prediction left standing when the reviewer marked the document reviewed (after confirming what
        # would be accepted): not a decision on that entity, which datasets can leave out or weigh less.
        FINISH_ACCEPT = "finish_accept", _("accepted on finishing the review")

    annotation = models.ForeignKey(Annotation, on_delete=models.CASCADE, related_name="events")
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="annotation_events")
    action = models.CharField(_("action"), max_length=16, choices=Action.choices)
    before = models.JSONField(_("before"), null=True, blank=True)
    after = models.JSONField(_("after"), null=True, blank=True)
    # Who and which version stay named (PROTECT): the event's hash covers their ids, so a deleted user or
    # version must not turn them into NULL (deactivate a user instead of deleting them).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        verbose_name=_("user"),
    )
    model_version = models.ForeignKey(
        "training.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        verbose_name=_("model version"),
    )
    # The annotation's revision this change was based on (0 for the event that created it); the change
    # produced revision base_revision + 1.
    base_revision = models.PositiveIntegerField(_("based on revision"), default=0)
    # Set before the row is written (not auto_now_add): the hash covers it.
    created_at = models.DateTimeField(_("time"), default=timezone.now, editable=False, db_index=True)
    # The document's hash chain of entity events (annotation.chain): the hash of its previous event and
    # this event's own, over its content and that previous hash.
    previous_hash = models.CharField(_("previous event's hash"), max_length=64, blank=True, editable=False)
    hash = models.CharField(_("hash"), max_length=64, blank=True, editable=False)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("annotation event")
        verbose_name_plural = _("annotation events")
        indexes = [models.Index(fields=["document", "id"])]
        constraints = [
            # Two accepted changes can never be based on the same revision of one annotation.
            models.UniqueConstraint(fields=["annotation", "base_revision"],
                                    name="event_unique_base_revision"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} #{self.annotation_id}"


class DocumentReview(models.Model):
    """The review state of one document, kept by the annotation services in the same transaction as every
    change (a projection, like Annotation): what the queue lists and filters on without touching the
    annotations (the least confidence it sorts on is Document.least_confidence, kept with it). Its row is
    also the lock that serialises changes within one document."""

    document = models.OneToOneField(Document, on_delete=models.CASCADE, related_name="review",
                                    primary_key=True)
    entity_count = models.PositiveIntegerField(_("entities"), default=0)
    verified_count = models.PositiveIntegerField(_("verified entities"), default=0)
    model_version = models.ForeignKey(
        "training.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("predicted by"),
    )
    seen_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("open by"),
    )
    seen_at = models.DateTimeField(_("last seen open"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("document review")
        verbose_name_plural = _("document reviews")

    def __str__(self) -> str:
        return f"{self.document}: {self.verified_count}/{self.entity_count}"


class ReviewOpening(models.Model):
    """A part of a page that the review page showed to a reviewer (its words and the entities listed):
    what finishing a review checks before accepting the predictions left standing. One row per reviewer
    and part, its time refreshed each time the part is shown."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="review_openings")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
                             verbose_name=_("reviewer"))
    page_number = models.PositiveIntegerField(_("page"))
    # Document word indexes [word_start, word_end) shown; a part whose entity list was cut short ends where
    # the list stopped.
    word_start = models.PositiveIntegerField(_("first word"))
    word_end = models.PositiveIntegerField(_("end word (exclusive)"))
    opened_at = models.DateTimeField(_("last opened"))

    class Meta:
        verbose_name = _("opened page part")
        verbose_name_plural = _("opened page parts")
        constraints = [
            models.UniqueConstraint(fields=["document", "user", "page_number", "word_start", "word_end"],
                                    name="reviewopening_unique_part"),
        ]

    def __str__(self) -> str:
        return f"{self.document_id} p.{self.page_number} [{self.word_start}, {self.word_end})"

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
        FINISH_ACCEPT = "finish_accept", _("accepted on finishing the review")

    classification = models.ForeignKey(DocumentClassification, on_delete=models.CASCADE,
                                       related_name="events")
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="class_events")
    action = models.CharField(_("action"), max_length=16, choices=Action.choices)
    before = models.JSONField(_("before"), null=True, blank=True)
    after = models.JSONField(_("after"), null=True, blank=True)
    user = models.ForeignKey(  # PROTECT, as on AnnotationEvent: the hash covers the ids
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        verbose_name=_("user"),
    )
    model_version = models.ForeignKey(
        "training.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        verbose_name=_("model version"),
    )
    created_at = models.DateTimeField(_("time"), default=timezone.now, editable=False, db_index=True)
    # The document's hash chain of class events (annotation.chain).
    previous_hash = models.CharField(_("previous event's hash"), max_length=64, blank=True, editable=False)
    hash = models.CharField(_("hash"), max_length=64, blank=True, editable=False)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("document class event")
        verbose_name_plural = _("document class events")
        indexes = [models.Index(fields=["document", "id"], name="annotation_classevent_chain")]

    def __str__(self) -> str:
        return f"{self.get_action_display()} #{self.classification_id}"

"""Writes for annotations. Every change writes an AnnotationEvent in the same transaction."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils.translation import gettext as _

from annotation.models import Annotation, AnnotationEvent, EntityType
from annotation.services_classes import document_class_accept_pending
from documents import services as document_services
from documents.models import Document
from documents.selectors import document_words

Action = AnnotationEvent.Action


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    label: str
    score: float | None = None


def _snapshot(annotation: Annotation) -> dict:
    return {
        "start": annotation.start,
        "end": annotation.end,
        "label": annotation.label.name,
        "status": annotation.status,
        "source": annotation.source,
        "text": annotation.text,
    }


def _event(annotation: Annotation, *, action: str, before: dict | None, user, model_version=None) -> None:
    AnnotationEvent.objects.create(
        annotation=annotation, document_id=annotation.document_id, action=action, before=before,
        after=_snapshot(annotation), user=user, model_version=model_version,
    )


# Distinct, readable highlight colours; new entity types take the next one.
PALETTE = ["#ffd54f", "#81d4fa", "#a5d6a7", "#f48fb1", "#ce93d8", "#ffab91", "#80cbc4", "#e6ee9c",
           "#b0bec5", "#bcaaa4"]


def entity_type_get_or_create(*, name: str) -> EntityType:
    name = name.strip().upper()
    if not name:
        raise ValidationError(_("An entity type needs a name."))
    entity_type = EntityType.objects.filter(name=name).first()
    if entity_type is None:
        used = set(EntityType.objects.values_list("color", flat=True))
        color = next((c for c in PALETTE if c not in used), PALETTE[EntityType.objects.count() % len(PALETTE)])
        entity_type, _created = EntityType.objects.get_or_create(name=name, defaults={"color": color})
    return entity_type


def _check_span(*, document: Document, start: int, end: int, word_count: int) -> None:
    if document.status != Document.Status.READY:
        raise ValidationError(_("The document is not ready for annotation."))
    if not (0 <= start < end <= word_count):
        raise ValidationError(
            _("The span %(start)d–%(end)d is outside the document's %(count)d words.")
            % {"start": start, "end": end, "count": word_count}
        )


def _overlapping(*, document: Document, start: int, end: int, exclude_id: int | None = None):
    qs = Annotation.objects.filter(document=document, start__lt=end, end__gt=start).exclude(
        status=Annotation.Status.REJECTED
    )
    if exclude_id:
        qs = qs.exclude(pk=exclude_id)
    return qs.first()


@transaction.atomic
def annotation_create(*, document: Document, start: int, end: int, label: EntityType,
                      user: AbstractBaseUser | None) -> Annotation:
    """A reviewer adds an entity by choosing words [start, end)."""
    words = document_words(document=document)
    _check_span(document=document, start=start, end=end, word_count=len(words))
    clash = _overlapping(document=document, start=start, end=end)
    if clash is not None:
        raise ValidationError(
            _("These words overlap the entity “%(text)s” (%(label)s); reject or change it first.")
            % {"text": clash.text, "label": clash.label.name}
        )
    annotation = Annotation.objects.create(
        document=document, start=start, end=end, label=label,
        text=" ".join(w.text for w in words[start:end]), status=Annotation.Status.ACCEPTED,
        source=Annotation.Source.HUMAN, reviewer=user,
    )
    _event(annotation, action=Action.CREATE, before=None, user=user)
    return annotation


def _change(annotation: Annotation, *, action: str, user, **fields) -> Annotation:
    with transaction.atomic():
        locked = Annotation.objects.select_for_update().select_related("label").get(pk=annotation.pk)
        reviving = locked.status == Annotation.Status.REJECTED and fields.get("status") not in (
            None, Annotation.Status.REJECTED)
        clash = reviving and _overlapping(document=locked.document, start=locked.start, end=locked.end,
                                          exclude_id=locked.pk)
        if clash:
            raise ValidationError(
                _("These words overlap the entity “%(text)s” (%(label)s); reject or change it first.")
                % {"text": clash.text, "label": clash.label.name}
            )
        before = _snapshot(locked)
        for name, value in fields.items():
            setattr(locked, name, value)
        locked.reviewer = user
        locked.revision = F("revision") + 1
        locked.save()
        locked.refresh_from_db()
        _event(locked, action=action, before=before, user=user)
    return locked


def annotation_accept(*, annotation: Annotation, user: AbstractBaseUser) -> Annotation:
    return _change(annotation, action=Action.ACCEPT, user=user, status=Annotation.Status.ACCEPTED)


def annotation_reject(*, annotation: Annotation, user: AbstractBaseUser) -> Annotation:
    return _change(annotation, action=Action.REJECT, user=user, status=Annotation.Status.REJECTED)


def annotation_relabel(*, annotation: Annotation, label: EntityType, user: AbstractBaseUser) -> Annotation:
    """A new label is the reviewer's own judgement, so the entity becomes accepted."""
    return _change(annotation, action=Action.RELABEL, user=user, label=label,
                   status=Annotation.Status.ACCEPTED)


@transaction.atomic
def annotations_predict(*, document: Document, spans: Iterable[Span], model_version) -> list[Annotation]:
    """Store a model's entities as predictions. Idempotent per (document, model version)."""
    if Annotation.objects.filter(document=document, model_version=model_version).exists():
        return list(Annotation.objects.filter(document=document, model_version=model_version))
    words = document_words(document=document)
    created = []
    for span in spans:
        if _overlapping(document=document, start=span.start, end=span.end) is not None:
            continue  # a reviewer's entity already covers these words
        annotation = Annotation.objects.create(
            document=document, start=span.start, end=span.end,
            label=entity_type_get_or_create(name=span.label),
            text=" ".join(w.text for w in words[span.start:span.end]),
            status=Annotation.Status.PREDICTED, source=Annotation.Source.MODEL, score=span.score,
            model_version=model_version,
        )
        _event(annotation, action=Action.PREDICT, before=None, user=None, model_version=model_version)
        created.append(annotation)
    return created


@transaction.atomic
def annotations_import(*, document: Document, spans: Iterable[Span], user: AbstractBaseUser | None) -> int:
    """Store an existing corpus's entities as accepted human annotations."""
    words = document_words(document=document)
    count = 0
    for span in spans:
        _check_span(document=document, start=span.start, end=span.end, word_count=len(words))
        annotation = Annotation.objects.create(
            document=document, start=span.start, end=span.end,
            label=entity_type_get_or_create(name=span.label),
            text=" ".join(w.text for w in words[span.start:span.end]),
            status=Annotation.Status.ACCEPTED, source=Annotation.Source.HUMAN, reviewer=user,
        )
        _event(annotation, action=Action.IMPORT, before=None, user=user)
        count += 1
    return count


@transaction.atomic
def document_review_finish(*, document: Document, user: AbstractBaseUser) -> Document:
    """Finish a review: predictions the reviewer left standing (entities and the document's class) count as
    accepted by them."""
    if document.status != Document.Status.READY:
        raise ValidationError(_("Only a ready document can be marked as reviewed."))
    for annotation in Annotation.objects.filter(document=document, status=Annotation.Status.PREDICTED):
        annotation_accept(annotation=annotation, user=user)
    document_class_accept_pending(document=document, user=user)  # the document's class, likewise
    return document_services.document_mark_reviewed(document=document, user=user)

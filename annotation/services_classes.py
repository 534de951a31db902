"""Writes for document classes (text classification): one class per document, predicted by the active model
or chosen by a reviewer, accepted or rejected like an entity. Every change writes a DocumentClassEvent in the
same transaction; the classification row is its projection (status, score, model version, reviewer,
revision). Kept apart from `annotation.services` (entities and the review workspace) on purpose.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils.translation import gettext as _

from annotation import chain
from annotation.models import Annotation, DocumentClass, DocumentClassEvent, DocumentClassification
from documents.models import Document

Action = DocumentClassEvent.Action
Status = Annotation.Status
Source = Annotation.Source

# Distinct colours for new classes (the entity palette's darker cousins).
PALETTE = ["#90caf9", "#a5d6a7", "#ffcc80", "#ce93d8", "#ef9a9a", "#80deea", "#c5e1a5", "#bcaaa4"]


def document_class_get_or_create(*, name: str) -> DocumentClass:
    name = " ".join(name.split())
    if not name:
        raise ValidationError(_("A document class needs a name."))
    found = DocumentClass.objects.filter(name=name).first()
    if found is None:
        used = set(DocumentClass.objects.values_list("color", flat=True))
        color = next((c for c in PALETTE if c not in used),
                     PALETTE[DocumentClass.objects.count() % len(PALETTE)])
        found, _created = DocumentClass.objects.get_or_create(name=name, defaults={"color": color})
    return found


def _snapshot(row: DocumentClassification) -> dict:
    return {"label": row.label.name, "status": row.status, "source": row.source, "score": row.score,
            "revision": row.revision}


def _event(row: DocumentClassification, *, action: str, before: dict | None, user,
           model_version=None) -> None:
    """Write one event, linked into the document's chain of class events (annotation.chain); the caller holds
    the classification row's lock, which serialises the document's class changes."""
    event = DocumentClassEvent(classification=row, document_id=row.document_id, action=action, before=before,
                               after=_snapshot(row), user=user, model_version=model_version)
    chain.events_link([event], previous=chain.chain_head(DocumentClassEvent, document_id=row.document_id))
    event.save(force_insert=True)


def _check_ready(document: Document) -> None:
    if document.status != Document.Status.READY:
        raise ValidationError(_("The document is not ready for annotation."))


def _write(document: Document, *, action: str, user, expected_revision: int | None = None,
           model_version=None, **fields) -> DocumentClassification:
    """Create or change the document's classification under a row lock, with its event."""
    with transaction.atomic():
        row = (DocumentClassification.objects.select_for_update().select_related("label")
               .filter(document=document).first())
        if expected_revision is not None and (row.revision if row else 0) != expected_revision:
            raise ValidationError(_("The document's class was changed meanwhile; reload and try again."),
                                  code="conflict")
        if row is None:
            try:
                with transaction.atomic():
                    row = DocumentClassification.objects.create(document=document,
                                                                model_version=model_version, **fields)
            except IntegrityError:  # created at the same moment by someone else: change theirs
                return _write(document, action=action, user=user, model_version=model_version, **fields)
            row = DocumentClassification.objects.select_related("label").get(pk=row.pk)
            _event(row, action=action, before=None, user=user, model_version=model_version)
            return row
        before = _snapshot(row)
        for name, value in fields.items():
            setattr(row, name, value)
        row.model_version = model_version if model_version is not None else row.model_version
        row.revision = F("revision") + 1
        row.save()
        row = DocumentClassification.objects.select_related("label").get(pk=row.pk)
        _event(row, action=action, before=before, user=user, model_version=model_version)
        return row


def document_class_predict(*, document: Document, label: str, score: float | None,
                           model_version) -> DocumentClassification | None:
    """Store a model's class for a document, for review. A reviewer's decision is never overwritten, and the
    same version predicting again changes nothing; None when nothing was written."""
    current = DocumentClassification.objects.filter(document=document).first()
    if current is not None and (current.status != Status.PREDICTED
                                or current.model_version_id == model_version.pk):
        return None
    return _write(document, action=Action.PREDICT, user=None, model_version=model_version,
                  label=document_class_get_or_create(name=label), status=Status.PREDICTED,
                  source=Source.MODEL, score=score, reviewer=None)


def document_class_set(*, document: Document, label: DocumentClass, user: AbstractBaseUser | None,
                       expected_revision: int | None = None) -> DocumentClassification:
    """A reviewer chooses the document's class: it is accepted as theirs."""
    _check_ready(document)
    current = DocumentClassification.objects.filter(document=document).first()
    source = Source.MODEL if current and current.source == Source.MODEL and current.label_id == label.pk \
        else Source.HUMAN
    return _write(document, action=Action.SET, user=user, expected_revision=expected_revision, label=label,
                  status=Status.ACCEPTED, source=source, reviewer=user)


def _existing(document: Document) -> DocumentClassification:
    row = DocumentClassification.objects.filter(document=document).first()
    if row is None:
        raise ValidationError(_("The document has no class yet; choose one."))
    return row


def document_class_accept(*, document: Document, user: AbstractBaseUser | None,
                          expected_revision: int | None = None) -> DocumentClassification:
    _check_ready(document)
    _existing(document)
    return _write(document, action=Action.ACCEPT, user=user, expected_revision=expected_revision,
                  status=Status.ACCEPTED, reviewer=user)


def document_class_reject(*, document: Document, user: AbstractBaseUser | None,
                          expected_revision: int | None = None) -> DocumentClassification:
    _check_ready(document)
    _existing(document)
    return _write(document, action=Action.REJECT, user=user, expected_revision=expected_revision,
                  status=Status.REJECTED, reviewer=user)


def document_class_import(*, document: Document, label: str,
                          user: AbstractBaseUser | None) -> DocumentClassification:
    """An existing corpus's class, stored as accepted by a human."""
    return _write(document, action=Action.IMPORT, user=user, label=document_class_get_or_create(name=label),
                  status=Status.ACCEPTED, source=Source.HUMAN, reviewer=user)


def document_class_accept_pending(*, document: Document, user: AbstractBaseUser | None,
                                  expected_revision: int | None = None) -> None:
    """Finishing a review (once the reviewer confirmed it): a predicted class left standing is accepted as
    theirs, with its own event action (FINISH_ACCEPT) so that datasets can tell it from a decision."""
    if DocumentClassification.objects.filter(document=document, status=Status.PREDICTED).exists():
        _write(document, action=Action.FINISH_ACCEPT, user=user, expected_revision=expected_revision,
               status=Status.ACCEPTED, reviewer=user)

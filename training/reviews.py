"""The kinds of review a task's labels come from, as the task registry names them (training.registry): what
training, evaluation, feedback and re-scoring ask of the reviewed documents without knowing the task.

- `ENTITIES`: entities marked on the words (annotation.Annotation, the review page's entity widgets);
- `CLASSES`: the document's class (annotation.DocumentClassification, the class widget).

A task whose labels are something else brings its review widgets and a kind here with the same methods.
"""

from __future__ import annotations

from collections import Counter

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from annotation import services as annotation_services
from annotation.models import Annotation, AnnotationEvent, DocumentClassEvent, DocumentClassification
from documents.models import Document

DECIDED = [Annotation.Status.ACCEPTED, Annotation.Status.REJECTED]


class EntityReview:
    event_kind = "annotation"  # what a version's learnt_from heads count (training.services.provenance)
    counts_entities = True  # the evaluation floor and the quality badge count accepted entities

    def learnable(self, reviewed: QuerySet) -> QuerySet:
        """The reviewed documents a task can learn from or be scored on: every one (no entity is a label
        too)."""
        return reviewed

    def items_per_document(self, ids: list[int]) -> dict[int, int]:
        """What the evaluation floor counts, per document: its accepted entities."""
        counts = Counter(Annotation.objects.filter(document_id__in=ids, status=Annotation.Status.ACCEPTED)
                         .values_list("document_id", flat=True))
        return {pk: counts.get(pk, 0) for pk in ids}

    def feedback_refusal(self, document: Document) -> str:
        """Why the document cannot be sent to the model yet ("" when it can)."""
        if not Annotation.objects.filter(document=document, status__in=DECIDED).exists():
            return _("The document has no reviewed annotations: accept, add or reject entities first.")
        return ""

    def events(self, document: Document) -> QuerySet:
        return AnnotationEvent.objects.filter(document=document)

    def rescore_pending(self, pending: QuerySet, *, version) -> QuerySet:
        """Of the documents nobody marked reviewed, those the version has not predicted yet."""
        return pending.exclude(annotations__model_version=version)

    def rescore_withdraw(self, document: Document) -> None:
        """Before a re-scoring writes: the old version's undecided entities make way."""
        annotation_services.annotations_withdraw_predictions(document=document, user=None)


class ClassReview:
    event_kind = "class"
    counts_entities = False  # the floor counts documents only

    def learnable(self, reviewed: QuerySet) -> QuerySet:
        return reviewed.filter(classification__status=Annotation.Status.ACCEPTED)

    def items_per_document(self, ids: list[int]) -> dict[int, int]:
        return dict.fromkeys(ids, 1)

    def feedback_refusal(self, document: Document) -> str:
        if not DocumentClassification.objects.filter(document=document,
                                                     status=Annotation.Status.ACCEPTED).exists():
            return _("The document has no accepted class: choose or accept its class first.")
        return ""

    def events(self, document: Document) -> QuerySet:
        return DocumentClassEvent.objects.filter(document=document)

    def rescore_pending(self, pending: QuerySet, *, version) -> QuerySet:
        """Those the version has not predicted yet whose class nobody has decided (a decided class stays)."""
        return (pending.exclude(classification__model_version=version)
                .exclude(classification__status__in=DECIDED))

    def rescore_withdraw(self, document: Document) -> None:
        """Nothing: a predicted class is replaced in place (annotation.services_classes)."""


ENTITIES = EntityReview()
CLASSES = ClassReview()

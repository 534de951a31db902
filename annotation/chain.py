"""The audit trail's hash chains: every event stores the hash of the one before it, per document.

A document has two chains, one of its AnnotationEvents (entities) and one of its DocumentClassEvents (its
class), each in id order. An event's `hash` is the SHA-256 of a canonical JSON of its content (document,
annotation or classification id, action, before, after, user id, model version id, base revision,
created_at) and of `previous_hash`, the hash of the document's previous event in the same chain ("" for
the first). Changing, removing or inserting an event therefore breaks the chain at that point, which
`events_verify` (and `manage.py verify_events`) finds and names. Removing the newest events leaves a shorter
chain that still holds: `events_verify` also checks that each entity's and class's current revision is the
one its newest event produced, so events removed from the end of a history show too (unless whoever removed
them also rolled the current state back; a model version's recorded heads still name them).

The services compute each new event's link while they hold the lock that serialises changes within the
document (annotation.services `_review_lock` for entities, the DocumentClassification row for the class),
so a chain never forks: the head they read is the newest committed event of that chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import Count, F, Max, Q

from annotation.models import Annotation, AnnotationEvent, DocumentClassEvent, DocumentClassification

GENESIS = ""  # the previous hash of a chain's first event

# What each kind of event hashes, beside its previous hash: (JSON key, model attribute).
FIELDS = {
    AnnotationEvent: (("document", "document_id"), ("annotation", "annotation_id"), ("action", "action"),
                      ("before", "before"), ("after", "after"), ("user", "user_id"),
                      ("model_version", "model_version_id"), ("base_revision", "base_revision"),
                      ("created_at", "created_at")),
    DocumentClassEvent: (("document", "document_id"), ("classification", "classification_id"),
                         ("action", "action"), ("before", "before"), ("after", "after"), ("user", "user_id"),
                         ("model_version", "model_version_id"), ("created_at", "created_at")),
}
KINDS = {AnnotationEvent: "annotation", DocumentClassEvent: "class"}


def _moment(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def event_content(event: AnnotationEvent | DocumentClassEvent) -> dict:
    content = {key: getattr(event, attribute) for key, attribute in FIELDS[type(event)]}
    content["created_at"] = _moment(content["created_at"])
    content["kind"] = KINDS[type(event)]
    content["previous_hash"] = event.previous_hash
    return content


def event_hash(event: AnnotationEvent | DocumentClassEvent) -> str:
    """SHA-256 of the event's canonical JSON (sorted keys, no spaces, UTF-8), its previous hash included."""
    canonical = json.dumps(event_content(event), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def chain_head(model: type[AnnotationEvent] | type[DocumentClassEvent], *, document_id: int) -> str:
    """The hash of the document's newest event of this kind (GENESIS when it has none). Read it under the
    lock that serialises the document's changes, or two writers would fork the chain."""
    head = (model.objects.filter(document_id=document_id).order_by("-id").values_list("hash", flat=True)
            .first())
    return GENESIS if head is None else head


def events_link(events: Iterable[AnnotationEvent | DocumentClassEvent], *, previous: str) -> str:
    """Chain unsaved events of one document, in the order they will be written (and numbered), after the
    event whose hash is `previous`: each gets its previous_hash and hash. Returns the new head."""
    for event in events:
        event.previous_hash = previous
        event.hash = previous = event_hash(event)
    return previous


# Verification -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BrokenLink:
    """The first event at which a document's chain does not hold (or, with no event to name, the entity or
    class whose history lost its newest events), and what did not match."""

    kind: str  # "annotation" or "class"
    document_id: int
    event_id: int | None
    problem: str
    subject: str = ""  # what is named instead of an event

    def __str__(self) -> str:
        return (f"document {self.document_id}: {self.subject or f'{self.kind} event {self.event_id}'}: "
                f"{self.problem}")


@dataclass
class VerifyResult:
    events: int = 0
    chains: int = 0
    broken: list[BrokenLink] | None = None

    def __post_init__(self):
        self.broken = self.broken or []

    @property
    def ok(self) -> bool:
        return not self.broken


def _check(event, previous_event) -> str | None:
    """What is wrong with `event` as the successor of `previous_event` (None for a chain's first)."""
    expected = GENESIS if previous_event is None else previous_event.hash
    if not event.hash:
        return "it has no hash (written outside annotation's services, or before the chain existed)"
    if event.previous_hash != expected:
        if previous_event is None:
            return (f"it is the document's first event but names {event.previous_hash[:16]}… as the hash "
                    "before it: the events before it were removed")
        return (f"it names {event.previous_hash[:16] or 'nothing'}… as the hash before it, but the event "
                f"before it (#{previous_event.pk}) has {previous_event.hash[:16]}…: an event was removed, "
                "inserted or reordered")
    computed = event_hash(event)
    if computed != event.hash:
        return (f"its content no longer matches its hash (stored {event.hash[:16]}…, computed from its "
                f"fields {computed[:16]}…): it was changed after it was written")
    return None


def _walk(model, *, document_ids: Iterable[int] | None, result: VerifyResult) -> None:
    qs = model.objects.all()
    if document_ids is not None:
        qs = qs.filter(document_id__in=list(document_ids))
    kind = KINDS[model]
    current, previous, broken = None, None, False
    for event in qs.order_by("document_id", "id").iterator(chunk_size=5000):
        if event.document_id != current:
            current, previous, broken = event.document_id, None, False
            result.chains += 1
        result.events += 1
        if not broken:
            problem = _check(event, previous)
            if problem is not None:
                result.broken.append(BrokenLink(kind, event.document_id, event.pk, problem))
                broken = True  # one report per chain: its first broken link
        previous = event


def _projections(*, document_ids: list[int] | None, result: VerifyResult) -> None:
    """Entities and classes whose current revision is not the one their newest event produced: events were
    removed from the end of their history (a chain that lost its tail still holds)."""
    reported = {(link.kind, link.document_id) for link in result.broken}
    annotations = Annotation.objects.annotate(newest=Max("events__base_revision")).filter(
        Q(newest__isnull=True) | Q(revision__gt=F("newest") + 1) | Q(revision__lt=F("newest") + 1))
    classes = DocumentClassification.objects.annotate(newest=Count("events")).filter(
        Q(revision__gt=F("newest")) | Q(revision__lt=F("newest")))
    if document_ids is not None:
        annotations = annotations.filter(document_id__in=document_ids)
        classes = classes.filter(document_id__in=document_ids)
    found = [("annotation", document_id, f"annotation {pk}", revision,
              (newest + 1) if newest is not None else 0)
             for pk, document_id, revision, newest in annotations.values_list("pk", "document_id", "revision",
                                                                                "newest")]
    found += [("class", document_id, f"the document's class (#{pk})", revision, newest)
              for pk, document_id, revision, newest in classes.values_list("pk", "document_id", "revision",
                                                                             "newest")]
    for kind, document_id, subject, revision, produced in sorted(
            found, key=lambda item: (item[1], item[0], item[2])):
        if (kind, document_id) in reported:
            continue  # one report per chain
        reported.add((kind, document_id))
        result.broken.append(BrokenLink(kind, document_id, None, subject=subject, problem=(
            f"its current revision is {revision} but its events end at revision {produced}: events at the "
            "end of its history were removed")))


def events_verify(*, document_ids: Iterable[int] | None = None) -> VerifyResult:
    """Walk every document's chains (or those of `document_ids`) in id order and report, for each broken
    chain, its first broken link; then check that every entity and class is in the state its newest event
    produced. Reads only; streams events, so memory stays flat."""
    result = VerifyResult()
    ids = list(document_ids) if document_ids is not None else None
    for model in (AnnotationEvent, DocumentClassEvent):
        _walk(model, document_ids=ids, result=result)
    _projections(document_ids=ids, result=result)
    result.broken.sort(key=lambda link: (link.document_id, link.kind))
    return result

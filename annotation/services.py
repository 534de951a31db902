"""Writes for annotations. Every change writes an AnnotationEvent in the same transaction.

Concurrency: every change to an existing annotation says which revision of it the change was based on.
Within one transaction the document's review row (DocumentReview) is locked first, then the annotation
row, both without joins (PostgreSQL re-checks a locked row's joins after waiting and would then find no
row at all); a change based on anything but the current revision raises AnnotationConflict carrying the
fresh state, and nothing is written. The unique (annotation, base_revision) constraint on events makes a
lost update impossible even for code that bypasses this module's locks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Min, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from annotation import chain, selectors
from annotation.models import Annotation, AnnotationEvent, DocumentReview, EntityType, ReviewOpening
from annotation.services_classes import document_class_accept_pending
from documents import services as document_services
from documents.models import Document
from documents.selectors import document_words

Action = AnnotationEvent.Action
Status = Annotation.Status
UNDOES = "undoes"  # the key of an undo event's snapshot that names the event it undid


class AnnotationConflict(Exception):
    """The change was based on a revision that is no longer the current one; nothing was written."""

    def __init__(self, annotation: Annotation, *, based_on: int | None, message: str | None = None):
        self.annotation = annotation
        self.based_on = based_on
        super().__init__(message or conflict_message(annotation))


def conflict_message(annotation: Annotation) -> str:
    return _("Someone else changed this entity (“%(text)s”) before you; your change was not applied. "
             "This is its current state: check it and try again.") % {"text": annotation.text[:60]}


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    label: str
    score: float | None = None
    status: str | None = None  # imports only: the state to restore (default accepted)
    source: str | None = None  # imports only (default human)


def annotation_snapshot(annotation: Annotation, *, label: EntityType | None = None) -> dict:
    label = label or annotation.label
    return {
        "start": annotation.start,
        "end": annotation.end,
        "label": label.name,
        "label_id": label.pk,
        "status": annotation.status,
        "source": annotation.source,
        "text": annotation.text,
    }


def _event(annotation: Annotation, *, action: str, before: dict | None, user, base_revision: int,
           model_version=None, label: EntityType | None = None, previous: str | None = None,
           undoes: AnnotationEvent | None = None) -> AnnotationEvent:
    """Write one event, linked into the document's hash chain (annotation.chain). The caller holds the
    document's review lock; `previous` is the chain's head when the caller already knows it (a loop over
    many entities of one document), else it is read. An undo (annotation_undo_last) names the event it
    undid in its snapshot (`undoes`), inside what the hash covers."""
    after = annotation_snapshot(annotation, label=label)
    if undoes is not None:
        after[UNDOES] = undoes.pk
    event = AnnotationEvent(
        annotation=annotation, document_id=annotation.document_id, action=action, before=before,
        after=after, user=user, model_version=model_version, base_revision=base_revision,
    )
    if previous is None:
        previous = chain.chain_head(AnnotationEvent, document_id=annotation.document_id)
    chain.events_link([event], previous=previous)
    event.save(force_insert=True)
    return event


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
        color = next((c for c in PALETTE if c not in used),
                     PALETTE[EntityType.objects.count() % len(PALETTE)])
        taken = set(EntityType.objects.values_list("shortcut", flat=True))
        shortcut = next((str(d) for d in range(1, 10) if str(d) not in taken), "")
        entity_type, _created = EntityType.objects.get_or_create(
            name=name, defaults={"color": color, "shortcut": shortcut})
    return entity_type


# The document's review row: the lock and the queue's summary ----------------------------------------------

def _review_lock(document_id: int) -> DocumentReview:
    """Lock (creating if needed) the document's review row: changes within one document take turns."""
    DocumentReview.objects.bulk_create([DocumentReview(document_id=document_id)], ignore_conflicts=True)
    return DocumentReview.objects.select_for_update().get(pk=document_id)


def document_review_summarise(*, document_id: int, review: DocumentReview | None = None) -> DocumentReview:
    """Recompute the queue's figures for one document from its annotations (inside the caller's lock)."""
    review = review or _review_lock(document_id)
    live = Annotation.objects.filter(document_id=document_id).exclude(status=Status.DELETED)
    stats = live.aggregate(
        total=Count("id"), verified=Count("id", filter=Q(status__in=[Status.ACCEPTED, Status.REJECTED])),
        confidence=Min("score", filter=Q(source=Annotation.Source.MODEL)),
    )
    latest = (live.filter(source=Annotation.Source.MODEL).exclude(model_version=None).order_by("-id")
              .values_list("model_version_id", flat=True).first())
    review.entity_count, review.verified_count, review.model_version_id = (stats["total"], stats["verified"],
                                                                            latest)
    review.save(update_fields=["entity_count", "verified_count", "model_version", "updated_at"])
    Document.objects.filter(pk=document_id).update(least_confidence=stats["confidence"])
    return review


def document_review_seen(*, document: Document, user: AbstractBaseUser):
    """Note that `user` has the document open (presence shown in the queue, never a lock) and return whoever
    else had it open within DOCLOOP_PRESENCE_SECONDS (read before this visit takes the slot), or None.

    A reviewer who reported in on this document less than a quarter of the window ago is still fresh: nothing
    is written (a reload or the next entity costs one read, not two writes and a commit)."""
    now = timezone.now()
    window = timedelta(seconds=settings.DOCLOOP_PRESENCE_SECONDS)
    review = (DocumentReview.objects.filter(pk=document.pk).select_related("seen_by")
              .only("document_id", "seen_at", "seen_by").first())
    if review is None:
        DocumentReview.objects.bulk_create([DocumentReview(document_id=document.pk)], ignore_conflicts=True)
    elif review.seen_at is not None and review.seen_at >= now - window:
        if review.seen_by_id not in (None, user.pk):
            other = review.seen_by
            DocumentReview.objects.filter(pk=document.pk).update(seen_by=user, seen_at=now)
            return other
        if review.seen_by_id == user.pk and review.seen_at >= now - window / 4:
            return None
    DocumentReview.objects.filter(pk=document.pk).update(seen_by=user, seen_at=now)
    return None


def review_part_opened(*, document: Document, user: AbstractBaseUser, page_number: int, word_start: int,
                       word_end: int) -> None:
    """Note that the review page has just shown `user` these words of a page with their entities (one upsert):
    what finishing the review checks (annotation.selectors.review_finish_summary)."""
    ReviewOpening.objects.bulk_create(
        [ReviewOpening(document_id=document.pk, user_id=user.pk, page_number=page_number,
                       word_start=word_start, word_end=word_end, opened_at=timezone.now())],
        update_conflicts=True, unique_fields=["document", "user", "page_number", "word_start", "word_end"],
        update_fields=["opened_at"])


# Checks ---------------------------------------------------------------------------------------------------

def _check_ready(document: Document) -> None:
    if document.status != Document.Status.READY:
        raise ValidationError(_("The document is not ready for annotation."))


def _check_span(*, start: int, end: int, word_count: int) -> None:
    if not (0 <= start < end <= word_count):
        raise ValidationError(
            _("The span %(start)d–%(end)d is outside the document's %(count)d words.")
            % {"start": start, "end": end, "count": word_count}
        )


def _overlapping(*, document_id: int, start: int, end: int, exclude_id: int | None = None):
    qs = Annotation.objects.filter(document_id=document_id, start__lt=end, end__gt=start).exclude(
        status__in=Annotation.INACTIVE).select_related("label")
    if exclude_id:
        qs = qs.exclude(pk=exclude_id)
    return qs.first()


def _refuse_overlap(clash: Annotation | None) -> None:
    if clash is not None:
        raise ValidationError(
            _("These words overlap the entity “%(text)s” (%(label)s); reject or change it first.")
            % {"text": clash.text, "label": clash.label.name}
        )


def _words_text(document: Document, start: int, end: int) -> tuple[str, int]:
    words = document_words(document=document)
    return " ".join(w.text for w in words[start:end]), len(words)


# Changes --------------------------------------------------------------------------------------------------

def annotation_create(*, document: Document, start: int, end: int, label: EntityType,
                      user: AbstractBaseUser | None) -> Annotation:
    """A reviewer adds an entity by choosing words [start, end)."""
    _check_ready(document)
    with transaction.atomic():
        review = _review_lock(document.pk)
        text, count = _words_text(document, start, end)
        _check_span(start=start, end=end, word_count=count)
        _refuse_overlap(_overlapping(document_id=document.pk, start=start, end=end))
        annotation = Annotation.objects.create(
            document=document, start=start, end=end, label=label, text=text, status=Status.ACCEPTED,
            source=Annotation.Source.HUMAN, reviewer=user,
        )
        _event(annotation, action=Action.CREATE, before=None, user=user, base_revision=0, label=label)
        document_review_summarise(document_id=document.pk, review=review)
    return annotation


def _apply(locked: Annotation, *, action: str, user, target: dict, review: DocumentReview,
           document: Document | None = None, summarise: bool = True, check_overlap: bool = True,
           undoes: AnnotationEvent | None = None) -> Annotation:
    """Move a locked annotation to `target` (fields of a snapshot), with its event. Caller holds the locks."""
    label = locked.label
    if "label_id" in target and target["label_id"] != locked.label_id:
        label = EntityType.objects.get(pk=target["label_id"])
    start, end = target.get("start", locked.start), target.get("end", locked.end)
    status = target.get("status", locked.status)
    if check_overlap and status not in Annotation.INACTIVE:
        # An entity that claims words (again, or other ones) must not overlap another one.
        _refuse_overlap(_overlapping(document_id=locked.document_id, start=start, end=end,
                                     exclude_id=locked.pk))
    before = annotation_snapshot(locked)
    if (start, end) != (locked.start, locked.end):
        document = document or Document.objects.get(pk=locked.document_id)
        text, count = _words_text(document, start, end)
        _check_span(start=start, end=end, word_count=count)
        locked.start, locked.end, locked.text = start, end, text
    base = locked.revision
    locked.label, locked.status = label, status
    locked.reviewer = user
    locked.revision = base + 1
    locked.save()
    _event(locked, action=action, before=before, user=user, base_revision=base, label=label, undoes=undoes)
    if summarise:
        document_review_summarise(document_id=locked.document_id, review=review)
    return locked


def _change(annotation: Annotation, *, action: str, user, revision: int | None, target: dict) -> Annotation:
    """One change to one annotation, refused when it was based on a stale revision.

    `revision` is the revision the user saw; None (jobs, commands) means "whatever is current".
    """
    with transaction.atomic():
        review = _review_lock(annotation.document_id)
        # No select_related here: see the module docstring.
        locked = Annotation.objects.select_for_update().get(pk=annotation.pk)
        if revision is not None and locked.revision != revision:
            raise AnnotationConflict(locked, based_on=revision)
        if locked.status == Status.DELETED and action != Action.REVERT:
            raise ValidationError(_("This entity was deleted; restore it from the history first."))
        return _apply(locked, action=action, user=user, target=target, review=review)


def annotation_accept(*, annotation: Annotation, user: AbstractBaseUser,
                      revision: int | None = None) -> Annotation:
    return _change(annotation, action=Action.ACCEPT, user=user, revision=revision,
                   target={"status": Status.ACCEPTED})


def annotation_reject(*, annotation: Annotation, user: AbstractBaseUser,
                      revision: int | None = None) -> Annotation:
    return _change(annotation, action=Action.REJECT, user=user, revision=revision,
                   target={"status": Status.REJECTED})


def annotation_relabel(*, annotation: Annotation, label: EntityType, user: AbstractBaseUser,
                       revision: int | None = None) -> Annotation:
    """A new label is the reviewer's own judgement, so the entity becomes accepted."""
    return _change(annotation, action=Action.RELABEL, user=user, revision=revision,
                   target={"label_id": label.pk, "status": Status.ACCEPTED})


def annotation_resize(*, annotation: Annotation, start: int, end: int, user: AbstractBaseUser,
                      revision: int | None = None) -> Annotation:
    """Move the entity's boundaries to the words [start, end); the reviewer's judgement, so accepted."""
    if end <= start:
        raise ValidationError(_("An entity needs at least one word."))
    return _change(annotation, action=Action.RESIZE, user=user, revision=revision,
                   target={"start": start, "end": end, "status": Status.ACCEPTED})


def annotation_delete(*, annotation: Annotation, user: AbstractBaseUser,
                      revision: int | None = None) -> Annotation:
    """Remove an entity. The row stays (status deleted) so its history, and a revert, remain possible."""
    return _change(annotation, action=Action.DELETE, user=user, revision=revision,
                   target={"status": Status.DELETED})


def annotations_accept_above(*, document: Document, threshold: float, user: AbstractBaseUser) -> int:
    """Accept every predicted entity whose model confidence is at least `threshold`."""
    if not 0.0 <= threshold <= 1.0:
        raise ValidationError(_("The confidence must be between 0 and 1."))
    _check_ready(document)
    with transaction.atomic():
        review = _review_lock(document.pk)
        chosen = list(Annotation.objects.select_for_update()
                      .filter(document=document, status=Status.PREDICTED, score__gte=threshold)
                      .order_by("start"))
        for annotation in chosen:
            _apply(annotation, action=Action.ACCEPT, user=user, target={"status": Status.ACCEPTED},
                   review=review, document=document, summarise=False)
        document_review_summarise(document_id=document.pk, review=review)
    return len(chosen)


def document_predictions_writable(*, document: Document) -> bool:
    """Inside the caller's transaction: take the document's review lock (held until the transaction ends, so
    a finish waits for a model's write, or the write sees the finish) and say whether a model's predictions
    may be written now: the document is ready and nobody has marked it reviewed."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("document_predictions_writable must run inside the transaction that writes")
    _review_lock(document.pk)
    return Document.objects.filter(pk=document.pk, status=Document.Status.READY,
                                   reviewed_at__isnull=True).exists()


@transaction.atomic
def annotations_predict(*, document: Document, spans: Iterable[Span], model_version) -> list[Annotation]:
    """Store a model's entities as predictions. Idempotent per (document, model version)."""
    review = _review_lock(document.pk)
    if Annotation.objects.filter(document=document, model_version=model_version).exists():
        return list(Annotation.objects.filter(document=document, model_version=model_version))
    words = document_words(document=document)
    created = []
    head = None  # the chain's head, read once and carried along
    for span in spans:
        if _overlapping(document_id=document.pk, start=span.start, end=span.end) is not None:
            continue  # a reviewer's entity already covers these words
        label = entity_type_get_or_create(name=span.label)
        annotation = Annotation.objects.create(
            document=document, start=span.start, end=span.end, label=label,
            text=" ".join(w.text for w in words[span.start:span.end]),
            status=Status.PREDICTED, source=Annotation.Source.MODEL, score=span.score,
            model_version=model_version,
        )
        head = _event(annotation, action=Action.PREDICT, before=None, user=None, model_version=model_version,
                      base_revision=0, label=label, previous=head).hash
        created.append(annotation)
    document_review_summarise(document_id=document.pk, review=review)
    return created


@transaction.atomic
def annotations_import(*, document: Document, spans: Iterable[Span], user: AbstractBaseUser | None,
                       status: str = Status.ACCEPTED) -> int:
    """Store an existing corpus's entities (accepted human annotations unless a span says otherwise)."""
    review = _review_lock(document.pk)
    words = document_words(document=document)
    count = 0
    head = None  # the chain's head, read once and carried along
    for span in spans:
        _check_span(start=span.start, end=span.end, word_count=len(words))
        span_status = span.status or status
        if span_status not in Status.values or span_status == Status.DELETED:
            raise ValidationError(_("Unknown entity status “%(status)s”.") % {"status": span_status})
        if span_status not in Annotation.INACTIVE:
            _refuse_overlap(_overlapping(document_id=document.pk, start=span.start, end=span.end))
        label = entity_type_get_or_create(name=span.label)
        annotation = Annotation.objects.create(
            document=document, start=span.start, end=span.end, label=label,
            text=" ".join(w.text for w in words[span.start:span.end]),
            status=span_status, source=span.source or Annotation.Source.HUMAN,
            reviewer=user if span_status != Status.PREDICTED else None, score=span.score,
        )
        head = _event(annotation, action=Action.IMPORT, before=None, user=user, base_revision=0, label=label,
                      previous=head).hash
        count += 1
    document_review_summarise(document_id=document.pk, review=review)
    return count


class FinishNotConfirmed(Exception):
    """Finishing would accept predictions left standing that the reviewer has not confirmed, or has confirmed
    for a state the document has left since; nothing was written. `summary` is what finishing would accept
    now (annotation.selectors.FinishSummary); `changed` says the confirmation was stale."""

    def __init__(self, summary, *, changed: bool = False):
        self.summary = summary
        self.changed = changed
        super().__init__(_("The document changed since you confirmed; check what finishing accepts now.")
                         if changed
                         else _("Finishing accepts the predictions left standing: confirm first."))


def document_review_finish(*, document: Document, user: AbstractBaseUser, accept_standing: bool = False,
                           based_on: str | None = None) -> Document:
    """Finish a review. Predictions still standing (entities and the document's class) are accepted as the
    reviewer's only with `accept_standing` (the reviewer confirmed what annotation.selectors.
    review_finish_summary told them), each with a FINISH_ACCEPT event; otherwise FinishNotConfirmed carries
    that summary and nothing is written. `based_on` is the token of the summary confirmed: when the document
    has changed since, FinishNotConfirmed again. With DOCLOOP_FINISH_REQUIRES_ALL_PAGES, a reviewer who has
    not opened every part of every page is refused."""
    if document.status != Document.Status.READY:
        raise ValidationError(_("Only a ready document can be marked as reviewed."))
    if selectors.document_predictions_pending(document=document):
        raise ValidationError(_("The model's predictions for this document are still on their way; mark it "
                                "as reviewed once they have arrived."), code="predicting")
    with transaction.atomic():
        review = _review_lock(document.pk)
        summary = selectors.review_finish_summary(document=document, user=user)
        if settings.DOCLOOP_FINISH_REQUIRES_ALL_PAGES and summary.unopened:
            raise ValidationError(_("Open every page before marking the document reviewed; not opened yet: "
                                    "%(parts)s.") % {"parts": summary.unopened_text}, code="unopened")
        if summary.accepts_anything:
            if not accept_standing or (based_on is not None and based_on != summary.token):
                raise FinishNotConfirmed(summary, changed=accept_standing)
            for annotation in Annotation.objects.select_for_update().filter(document=document,
                                                                            status=Status.PREDICTED):
                _apply(annotation, action=Action.FINISH_ACCEPT, user=user, target={"status": Status.ACCEPTED},
                       review=review, document=document, summarise=False)
            document_review_summarise(document_id=document.pk, review=review)
            if summary.standing_class is not None:  # the document's class, likewise
                document_class_accept_pending(document=document, user=user,
                                              expected_revision=summary.standing_class.revision)
        return document_services.document_mark_reviewed(document=document, user=user)


def document_review_reset(*, document: Document) -> Document:
    """Make a reviewed document reviewable again (an admin action); its annotations stay as they are."""
    return document_services.document_mark_unreviewed(document=document)


# History: revert to an earlier point (itself a new event) ------------------------------------------------

class DocumentConflict(Exception):
    """A document-wide change was based on a history that has grown since; nothing was written."""

    def __init__(self, *, head: int):
        self.head = head
        super().__init__(_("Someone changed this document after you opened its history; nothing was "
                           "reverted. The history below is up to date: check it and try again."))


def _target_of(snapshot: dict | None) -> dict:
    """A past snapshot as fields to apply: before its first event an entity did not exist (deleted)."""
    if snapshot is None:
        return {"status": Status.DELETED}
    label_id = snapshot.get("label_id")
    if label_id is not None and not EntityType.objects.filter(pk=label_id).exists():
        # The type was merged into another one since: follow the merge.
        merged = AnnotationEvent.objects.filter(action=Action.MERGE, before__label_id=label_id).first()
        label_id = merged.after["label_id"] if merged else None
    if label_id is None or not EntityType.objects.filter(pk=label_id).exists():
        # The type was merged away or deleted since: fall back to its name, else explain.
        label = EntityType.objects.filter(name=snapshot["label"]).first()
        if label is None:
            raise ValidationError(_("The entity type “%(label)s” no longer exists; recreate it to restore "
                                    "this state.") % {"label": snapshot["label"]})
        label_id = label.pk
    return {"start": snapshot["start"], "end": snapshot["end"], "label_id": label_id,
            "status": snapshot["status"]}


def _differs(annotation: Annotation, target: dict) -> bool:
    return any(getattr(annotation, name) != value for name, value in target.items())


def annotation_revert(*, annotation: Annotation, event: AnnotationEvent, user: AbstractBaseUser,
                      revision: int | None = None) -> Annotation:
    """Bring one entity back to its state right after `event` (one of its own events)."""
    if event.annotation_id != annotation.pk:
        raise ValidationError(_("This event belongs to another entity."))
    with transaction.atomic():
        review = _review_lock(annotation.document_id)
        locked = Annotation.objects.select_for_update().get(pk=annotation.pk)
        if revision is not None and locked.revision != revision:
            raise AnnotationConflict(locked, based_on=revision)
        target = _target_of(event.after)
        if not _differs(locked, target):
            raise ValidationError(_("The entity is already in that state."))
        return _apply(locked, action=Action.REVERT, user=user, target=target, review=review)


# Changes a reviewer may undo with one key: their own decisions on entities (not a merge of types, an import
# or the accepting that finishing a review does for every prediction left standing).
UNDOABLE = (Action.CREATE, Action.ACCEPT, Action.REJECT, Action.RELABEL, Action.RESIZE, Action.DELETE,
            Action.REVERT)


def _last_undoable(*, document: Document, user: AbstractBaseUser) -> AnnotationEvent | None:
    """`user`'s newest change to the document's entities that no undo of theirs names yet. Walking back
    from the newest, an undo marks the (older) event it undid; undos themselves are never candidates, so
    undoing again goes one more change back."""
    undone: set[int] = set()
    events = (AnnotationEvent.objects.filter(document=document, user=user, action__in=UNDOABLE)
              .order_by("-id")
              .only("id", "annotation_id", "action", "before", "after", "base_revision"))
    for event in events.iterator(chunk_size=200):
        undid = (event.after or {}).get(UNDOES)
        if undid is not None:
            undone.add(undid)
        elif event.pk not in undone:
            return event
    return None


def annotation_undo_last(*, document: Document, user: AbstractBaseUser) -> tuple[Annotation, AnnotationEvent]:
    """Undo `user`'s own last change to one of the document's entities: the entity goes back to its state
    before that change through the revert path (a REVERT event, which names the event it undid). When anyone
    else (a person, a job, an import) has changed that entity since, AnnotationConflict with who it was, and
    nothing is written; nothing left to undo, or words another entity has taken since, ValidationError.
    Returns the entity as it is now and the event undone."""
    _check_ready(document)
    with transaction.atomic():
        review = _review_lock(document.pk)
        event = _last_undoable(document=document, user=user)
        if event is None:
            raise ValidationError(_("You have no change to this document left to undo."), code="nothing")
        locked = Annotation.objects.select_for_update().get(pk=event.annotation_id)
        since = (AnnotationEvent.objects.filter(annotation_id=locked.pk, pk__gt=event.pk).exclude(user=user)
                 .select_related("user").order_by("id").first())
        if since is not None:
            who = since.user.get_username() if since.user is not None else _("Someone else")
            raise AnnotationConflict(locked, based_on=event.base_revision + 1, message=_(
                "%(who)s changed the entity “%(text)s” after your change (%(action)s), so it was not undone. "
                "This is its current state: check it and change it by hand if needed.")
                % {"who": who, "text": locked.text[:60], "action": event.get_action_display()})
        annotation = _apply(locked, action=Action.REVERT, user=user, target=_target_of(event.before),
                            review=review, document=document, undoes=event)
    return annotation, event


def document_revert(*, document: Document, event_id: int, user: AbstractBaseUser,
                    head: int | None = None) -> int:
    """Bring every entity of a document back to its state right after event `event_id`; entities added
    since are deleted. `head` is the newest event id the user saw (a newer one makes this a conflict).
    Returns how many entities changed."""
    _check_ready(document)
    with transaction.atomic():
        review = _review_lock(document.pk)
        events = AnnotationEvent.objects.filter(document=document)
        latest = events.order_by("-id").values_list("id", flat=True).first() or 0
        if head is not None and latest != head:
            raise DocumentConflict(head=latest)
        if not events.filter(pk=event_id).exists():
            raise ValidationError(_("This point is not in the document's history."))
        past: dict[int, dict] = {}
        for annotation_id, after in (events.filter(pk__lte=event_id).order_by("id")
                                     .values_list("annotation_id", "after")):
            past[annotation_id] = after
        changed = 0
        locked = list(Annotation.objects.select_for_update().filter(document=document).order_by("id"))
        targets = [(a, _target_of(past.get(a.pk))) for a in locked]
        # Entities leaving their words go first, so no entity ever overlaps another on the way.
        targets.sort(key=lambda pair: pair[1]["status"] not in Annotation.INACTIVE)
        for annotation, target in targets:
            if annotation.status == Status.DELETED and target["status"] == Status.DELETED:
                continue
            if _differs(annotation, target):
                _apply(annotation, action=Action.REVERT, user=user, target=target, review=review,
                       document=document, summarise=False, check_overlap=False)
                changed += 1
        document_review_summarise(document_id=document.pk, review=review)
    return changed


# Label schema -----------------------------------------------------------------------------------------------

def entity_type_save(*, entity_type: EntityType | None = None, name: str, color: str, description: str = "",
                     shortcut: str = "") -> EntityType:
    """Create or change an entity type. Renaming keeps history: events keep the type's id beside its name."""
    entity_type = entity_type or EntityType()
    entity_type.name, entity_type.color = name.strip().upper(), color.strip().lower()
    entity_type.description, entity_type.shortcut = description.strip(), shortcut.strip()
    entity_type.full_clean()
    entity_type.save()
    return entity_type


def entity_type_merge(*, source: EntityType, target: EntityType, user: AbstractBaseUser | None) -> int:
    """Give every entity of `source` the type `target` (a MERGE event each), then remove `source`.
    Returns how many entities moved. Reverting to a state from before the merge finds `target` through
    the merge events."""
    if source.pk == target.pk:
        raise ValidationError(_("Choose two different types to merge."))
    moved = 0
    with transaction.atomic():
        document_ids = sorted(set(Annotation.objects.filter(label=source)
                                  .values_list("document_id", flat=True)))
        for document_id in document_ids:
            review = _review_lock(document_id)
            for annotation in Annotation.objects.select_for_update().filter(document_id=document_id,
                                                                            label=source):
                _apply(annotation, action=Action.MERGE, user=user, target={"label_id": target.pk},
                       review=review, summarise=False, check_overlap=False)
                moved += 1
        EntityType.objects.filter(pk=source.pk).delete()
    return moved


def annotations_withdraw_predictions(*, document: Document, user: AbstractBaseUser | None) -> int:
    """Delete (with events) the model's predictions nobody has decided on yet, before predicting again."""
    with transaction.atomic():
        review = _review_lock(document.pk)
        stale = list(Annotation.objects.select_for_update().filter(document=document,
                                                                   status=Status.PREDICTED))
        for annotation in stale:
            _apply(annotation, action=Action.DELETE, user=user, target={"status": Status.DELETED},
                   review=review, document=document, summarise=False)
        document_review_summarise(document_id=document.pk, review=review)
    return len(stale)

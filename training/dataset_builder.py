"""DatasetBuilder: the rows of a snapshot, streamed out of the database from reviewed documents.

Each task's rows come from a generator here (named by the task registry, `training.registry`), one row per
document in canonical order (by the PDF's SHA-256), read in batches of documents so memory stays flat in
their number. `training.ml.snapshot` turns the rows into the snapshot's files, hash and statistics.

"As of a date": with `reviewed_before` set, a document counts when it was reviewed before that moment, and
its entities (and its class) are those its events say were accepted then, not today's state.

Accepted on finishing: an entity (or class) whose latest event is `finish_accept` was a prediction left
standing when the reviewer confirmed "Mark as reviewed", never decided on by itself. `finish_accepted` says
what the rows make of it: "keep" (the rows are those of any accepted entity, exactly as before), "exclude"
(a token row lists its spans in `finish_accepted` with `finish_weight` 0: training leaves their words out of
the loss, it does not teach them as "O"; a text row carries `finish_weight` 0) or "weight" (the same with
`finish_weight` = the filters' weight). Rows without such entities never carry the keys, so their canonical
content and hash are what they were.

Provenance: the builder notes each document's newest event behind the row it wrote (`heads`: annotation
events for token classification, class events for text classification), read together with the state so
that the two agree: the snapshot's Dataset and the versions trained on it name them.

Imports nothing from the ML stack: `training.ml.snapshot` is pure Python.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, time

from django.db.models import F, Max
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from annotation.models import Annotation, AnnotationEvent, DocumentClassEvent, DocumentClassification
from annotation.selectors import accepted_spans_by_document, spans_non_overlapping
from documents.models import Document, Page
from training.ml.bio import spans_to_bio
from training.selectors import reviewed_documents

BATCH = 200  # documents read per round of queries, at most
BATCH_WORDS = 200_000  # and about this many words


def parse_moment(value: str) -> datetime | None:
    """An ISO date (its midnight, local time) or date-time (naive means local time); None if neither."""
    parsed = parse_datetime(value.strip())
    if parsed is None:
        day = parse_date(value.strip())
        if day is None:
            return None
        parsed = datetime.combine(day, time.min)
    return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed


FINISH_KEEP, FINISH_EXCLUDE, FINISH_WEIGHT = "keep", "exclude", "weight"
FINISH_TREATMENTS = (FINISH_KEEP, FINISH_EXCLUDE, FINISH_WEIGHT)


@dataclass(frozen=True)
class DatasetFilters:
    labels: tuple[str, ...] = ()  # keep only these entity types / classes (empty: all)
    reviewed_before: datetime | None = None  # documents reviewed before, in their state at that moment
    document_ids: tuple[int, ...] = ()  # only these documents (empty: every reviewed document)
    evaluation_set: int | None = None  # leave out this evaluation set's documents (training.services.gates)
    # Entities and classes accepted by finishing a review (see the module's docstring): keep, exclude or
    # weight (by finish_weight, above 0 and below 1).
    finish_accepted: str = FINISH_KEEP
    finish_weight: float = 0.5

    def __post_init__(self):
        if self.finish_accepted not in FINISH_TREATMENTS:
            raise ValueError(f"finish_accepted must be one of {', '.join(FINISH_TREATMENTS)}")
        if not 0 < self.finish_weight < 1:
            raise ValueError("finish_weight must be above 0 and below 1")

    @property
    def finish_loss_weight(self) -> float | None:
        """The loss weight rows give finish-accepted entities and classes (None: kept as any other)."""
        return {FINISH_EXCLUDE: 0.0, FINISH_WEIGHT: float(self.finish_weight)}.get(self.finish_accepted)

    def as_dict(self) -> dict:
        values = asdict(self)
        values["labels"] = list(self.labels)
        values["document_ids"] = list(self.document_ids)
        values["reviewed_before"] = self.reviewed_before.isoformat() if self.reviewed_before else None
        if self.finish_accepted == FINISH_KEEP:  # the default: named nowhere, as before the option existed
            del values["finish_accepted"]
        if self.finish_accepted != FINISH_WEIGHT:
            del values["finish_weight"]
        return {k: v for k, v in values.items() if v}


@dataclass
class DatasetBuilder:
    """Streams the rows of `task` for the documents that `filters` select."""

    task: str
    filters: DatasetFilters = field(default_factory=DatasetFilters)
    batch_size: int = BATCH
    batch_words: int = BATCH_WORDS
    # Filled while rows() is read: {document id: the id of its newest event behind its row}.
    heads: dict[int, int] = field(default_factory=dict, init=False)
    # Counted while rows() is read: the entities (or classes) in the rows that were accepted by finishing a
    # review, whatever the rows make of them.
    finish_accepted: int = field(default=0, init=False)

    @property
    def events_through(self) -> int | None:
        """The highest event id behind the rows read so far (None when no document had an event)."""
        return max(self.heads.values(), default=None)

    def documents(self):
        qs = reviewed_documents()
        if self.filters.reviewed_before is not None:
            qs = qs.filter(reviewed_at__lt=self.filters.reviewed_before)
        if self.filters.document_ids:
            qs = qs.filter(pk__in=self.filters.document_ids)
        if self.filters.evaluation_set is not None:
            from training.models import EvaluationSet

            held = (EvaluationSet.objects.filter(pk=self.filters.evaluation_set)
                    .values_list("documents", flat=True))
            qs = qs.exclude(sha256__in=held.first() or [])
        return qs.order_by("sha256")

    def batches(self) -> Iterator[list[tuple[int, str]]]:
        """(id, sha256) of the selected documents in canonical order, a batch at a time: at most
        `batch_size` documents and about `batch_words` words, so memory stays flat however many there are."""
        batch: list[tuple[int, str]] = []
        words = 0
        for pk, sha256, count in (self.documents().values_list("pk", "sha256", "word_count")
                                  .iterator(chunk_size=2000)):
            if batch and (len(batch) >= self.batch_size or words + (count or 0) > self.batch_words):
                yield batch
                batch, words = [], 0
            batch.append((pk, sha256))
            words += count or 0
        if batch:
            yield batch

    def rows(self) -> Iterator[dict]:
        from training.registry import task_spec

        return task_spec(self.task).rows(builder=self)


# Token classification -----------------------------------------------------------------------------------

def _line_ends(lines: bytes, count: int) -> list[bool]:
    """Page.line_ends, vectorised: a word ends a line when the next word's (block, line) differs."""
    import numpy as np

    keys = np.frombuffer(lines, dtype=np.int64, count=count)  # each (int32, int32) pair as one value
    ends = np.ones(count, dtype=bool)
    ends[:-1] = keys[1:] != keys[:-1]
    return ends.tolist()


def words_by_document(ids: list[int]) -> dict[int, tuple[list[str], list[bool]]]:
    words: dict[int, tuple[list[str], list[bool]]] = {pk: ([], []) for pk in ids}
    pages = (Page.objects.filter(document_id__in=ids).order_by("document_id", "number")
             .values_list("document_id", "words", "lines"))
    for document_id, texts, lines in pages.iterator(chunk_size=200):
        all_texts, all_ends = words[document_id]
        all_texts.extend(texts)
        all_ends.extend(_line_ends(bytes(lines), len(texts)))
    return words


def _event_heads(model, ids: list[int], moment: datetime | None = None) -> dict[int, int]:
    """Each document's newest event id (before `moment` when given)."""
    events = model.objects.filter(document_id__in=ids)
    if moment is not None:
        events = events.filter(created_at__lt=moment)
    return dict(events.order_by().values("document_id").annotate(newest=Max("id"))
                .values_list("document_id", "newest"))


CONSISTENT_READS = 5


def read_with_heads(model, ids: list[int], read):
    """`read(ids)` and each document's newest event as of that read. The services write a document's
    changes one at a time, each with an event numbered after the previous one: when the newest events are
    the same before and after the read, the read saw exactly the state they name. Read again while a change
    lands in between (a document being edited right now); after CONSISTENT_READS tries the heads read last."""
    before = _event_heads(model, ids)
    for _attempt in range(CONSISTENT_READS):
        state = read(ids)
        after = _event_heads(model, ids)
        if after == before:
            break
        before = after
    return state, after


def _accepted_spans_at(ids: list[int], moment: datetime) -> dict[int, list[tuple[int, int, str]]]:
    """Replay the events up to `moment`: each annotation's last state then, if it was accepted."""
    return _accepted_entities_at(ids, moment)[0]


FINISH_ACCEPT = AnnotationEvent.Action.FINISH_ACCEPT  # DocumentClassEvent's action has the same value

Finished = dict[int, set[tuple[int, int, str]]]  # document id -> (start, end, label) accepted by finishing


def _finish_accepted_now(ids: list[int]) -> Finished:
    """The accepted entities whose latest event is finish_accept. Few annotations ever had such an event:
    only theirs are read further."""
    candidates = set(AnnotationEvent.objects.filter(document_id__in=ids, action=FINISH_ACCEPT)
                     .values_list("annotation_id", flat=True))
    if not candidates:
        return {}
    last: dict[int, str] = {}
    for annotation_id, action in (AnnotationEvent.objects.filter(annotation_id__in=candidates)
                                  .order_by("annotation_id", "created_at", "id")
                                  .values_list("annotation_id", "action")):
        last[annotation_id] = action
    finished: Finished = defaultdict(set)
    rows = (Annotation.objects.filter(pk__in=[pk for pk, action in last.items() if action == FINISH_ACCEPT],
                                      status=Annotation.Status.ACCEPTED)
            .values_list("document_id", "start", "end", "label__name"))
    for document_id, start, end, label in rows:
        finished[document_id].add((start, end, label))
    return finished


def accepted_entities_now(ids: list[int]) -> tuple[dict[int, list[tuple[int, int, str]]], Finished]:
    """The documents' accepted entities now (annotation.selectors.accepted_spans_by_document, overlaps
    included), and those of them accepted by finishing a review."""
    return accepted_spans_by_document(document_ids=ids), _finish_accepted_now(ids)


def _accepted_entities_at(ids: list[int],
                          moment: datetime) -> tuple[dict[int, list[tuple[int, int, str]]], Finished]:
    """Replay the events up to `moment`: each annotation's last state then, if it was accepted, and those
    whose last event then was finish_accept."""
    last: dict[int, tuple[int, str, dict]] = {}
    events = (AnnotationEvent.objects.filter(document_id__in=ids, created_at__lt=moment)
              .order_by("annotation_id", "created_at", "id")
              .values_list("annotation_id", "document_id", "action", "after"))
    for annotation_id, document_id, action, after in events.iterator(chunk_size=5000):
        last[annotation_id] = (document_id, action, after)
    spans: dict[int, list] = defaultdict(list)
    finished: Finished = defaultdict(set)
    for document_id, action, after in last.values():
        if after and after.get("status") == Annotation.Status.ACCEPTED:
            span = (after["start"], after["end"], after["label"])
            spans[document_id].append(span)
            if action == FINISH_ACCEPT:
                finished[document_id].add(span)
    return spans, finished


def finish_mark(row: dict, chosen: list[tuple[int, int, str]], finished: set[tuple[int, int, str]],
                weight: float | None) -> int:
    """Mark a token row's entities accepted by finishing a review (of its `chosen` spans, those in
    `finished`) with their loss `weight`, unless it is None (kept as any other); how many there are."""
    held = [[start, end] for start, end, label in chosen if (start, end, label) in finished]
    if held and weight is not None:
        row["finish_accepted"], row["finish_weight"] = held, weight
    return len(held)


def token_classification_rows(*, builder: DatasetBuilder) -> Iterator[dict]:
    """One row per reviewed document: its words, line ends and the BIO tags of its accepted entities."""
    keep = set(builder.filters.labels)
    moment = builder.filters.reviewed_before
    weight = builder.filters.finish_loss_weight
    for batch in builder.batches():
        ids = [pk for pk, _sha in batch]
        words = words_by_document(ids)
        if moment:
            (spans, finished), heads = (_accepted_entities_at(ids, moment),
                                        _event_heads(AnnotationEvent, ids, moment))
        else:
            (spans, finished), heads = read_with_heads(AnnotationEvent, ids, accepted_entities_now)
        builder.heads.update(heads)
        for pk, sha256 in batch:
            texts, ends = words[pk]
            chosen = spans_non_overlapping([s for s in spans.get(pk, []) if not keep or s[2] in keep])
            row = {"document": sha256, "tokens": texts, "line_ends": ends,
                   "tags": spans_to_bio(chosen, len(texts))}
            builder.finish_accepted += finish_mark(row, chosen, finished.get(pk, set()), weight)
            yield row


# Weak rows (self-training) ------------------------------------------------------------------------------

def weak_token_rows(*, labels: list[str], threshold: float, weight: float, max_words: int,
                    exclude: set[str] = frozenset()) -> list[dict]:
    """Weak rows (training.ml.self_training) of documents nobody has finished reviewing, from the
    predictions stored on them: ready documents with a predicted entity, not reviewed, whose key (SHA-256)
    is not in `exclude` (an evaluation set's documents), most confident first (the least confidence of
    their predictions, then the key), while their words stay within `max_words`. Never part of a snapshot.
    """
    from training.ml.self_training import WeakSpan, weak_row

    if max_words <= 0:
        return []
    candidates = (Document.objects.filter(status=Document.Status.READY, reviewed_at__isnull=True,
                                          annotations__status=Annotation.Status.PREDICTED)
                  .exclude(sha256__in=exclude).distinct()
                  .order_by(F("least_confidence").desc(nulls_last=True), "sha256")
                  .values_list("pk", "sha256", "word_count"))
    chosen: list[tuple[int, str]] = []
    words = 0
    for pk, sha256, count in candidates.iterator(chunk_size=2000):
        if words + (count or 0) > max_words:
            continue
        chosen.append((pk, sha256))
        words += count or 0
    rows: list[dict] = []
    for start in range(0, len(chosen), BATCH):
        batch = chosen[start:start + BATCH]
        ids = [pk for pk, _sha in batch]
        texts = words_by_document(ids)
        spans: dict[int, list[WeakSpan]] = defaultdict(list)
        active = (Annotation.objects.filter(document_id__in=ids).exclude(status__in=Annotation.INACTIVE)
                  .values_list("document_id", "start", "end", "label__name", "score", "status"))
        for document_id, s, e, label, score, status in active.iterator(chunk_size=5000):
            spans[document_id].append(WeakSpan(s, e, label, score,
                                               human=status == Annotation.Status.ACCEPTED))
        for pk, sha256 in batch:
            tokens, ends = texts[pk]
            row = weak_row(document=sha256, tokens=tokens, line_ends=ends, spans=spans.get(pk, ()),
                           threshold=threshold, weight=weight, labels=labels)
            if row is not None:
                rows.append(row)
    return rows


# Text classification ------------------------------------------------------------------------------------

def _classes_now(ids: list[int]) -> dict[int, str]:
    return dict(DocumentClassification.objects.filter(document_id__in=ids, status=Annotation.Status.ACCEPTED)
                .values_list("document_id", "label__name"))


def _classes_at(ids: list[int], moment: datetime) -> dict[int, str]:
    """Replay the class events up to `moment`: each document's class then, if it was accepted."""
    return _class_states_at(ids, moment)[0]


def _finish_classes_now(ids: list[int]) -> set[int]:
    """The documents whose accepted class's latest event is finish_accept."""
    candidates = set(DocumentClassEvent.objects.filter(document_id__in=ids, action=FINISH_ACCEPT)
                     .values_list("document_id", flat=True))
    last: dict[int, str] = {}
    for document_id, action in (DocumentClassEvent.objects.filter(document_id__in=candidates)
                                .order_by("document_id", "created_at", "id")
                                .values_list("document_id", "action")):
        last[document_id] = action
    return {pk for pk, action in last.items() if action == FINISH_ACCEPT}


def class_states_now(ids: list[int]) -> tuple[dict[int, str], set[int]]:
    return _classes_now(ids), _finish_classes_now(ids)


def _class_states_at(ids: list[int], moment: datetime) -> tuple[dict[int, str], set[int]]:
    """Each document's accepted class as of `moment`, and the documents whose last class event then was
    finish_accept."""
    last: dict[int, tuple[str, dict]] = {}
    events = (DocumentClassEvent.objects.filter(document_id__in=ids, created_at__lt=moment)
              .order_by("created_at", "id").values_list("document_id", "action", "after"))
    for document_id, action, after in events.iterator(chunk_size=5000):
        last[document_id] = (action, after)
    classes = {pk: after["label"] for pk, (_action, after) in last.items()
               if after and after.get("status") == Annotation.Status.ACCEPTED}
    return classes, {pk for pk in classes if last[pk][0] == FINISH_ACCEPT}


def document_text(words: list[str], line_ends: list[bool]) -> str:
    """A document's words as text: spaces between words, a newline where a PDF line ends."""
    parts = []
    for word, end in zip(words, line_ends, strict=True):
        parts.append(word)
        parts.append("\n" if end else " ")
    return "".join(parts).rstrip()


def text_classification_rows(*, builder: DatasetBuilder) -> Iterator[dict]:
    """One row per reviewed document with an accepted class: its text and its class."""
    keep = set(builder.filters.labels)
    moment = builder.filters.reviewed_before
    weight = builder.filters.finish_loss_weight
    for batch in builder.batches():
        ids = [pk for pk, _sha in batch]
        if moment:
            (classes, finished), heads = (_class_states_at(ids, moment),
                                          _event_heads(DocumentClassEvent, ids, moment))
        else:
            (classes, finished), heads = read_with_heads(DocumentClassEvent, ids, class_states_now)
        ids = [pk for pk in ids if pk in classes and (not keep or classes[pk] in keep)]
        builder.heads.update({pk: heads[pk] for pk in ids if pk in heads})
        if not ids:
            continue
        words = words_by_document(ids)
        for pk, sha256 in batch:
            if pk in words:
                row = {"document": sha256, "text": document_text(*words[pk]), "label": classes[pk]}
                if pk in finished:
                    builder.finish_accepted += 1
                    if weight is not None:
                        row["finish_weight"] = weight
                yield row


def document_ids_for_keys(keys: list[str]) -> list[int]:
    """Database ids of the documents whose PDF SHA-256s are `keys` (the keys of database snapshots)."""
    return list(Document.objects.filter(sha256__in=keys).order_by("sha256").values_list("pk", flat=True))

"""Reads for annotations: what the review page shows and what training learns from."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import BinaryField, Count, Exists, F, JSONField, OuterRef, Prefetch, Q
from django.db.models.expressions import RawSQL
from django.db.models.functions import Length, Substr
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy, ngettext

from annotation.models import (
    Annotation,
    AnnotationEvent,
    DocumentClassification,
    DocumentReview,
    EntityType,
    ReviewOpening,
)
from documents.models import Document, Page
from documents.selectors import document_search_filter


def accepted_spans(*, document: Document) -> list[tuple[int, int, str]]:
    """The latest accepted entities of a document as (start, end, label), non-overlapping, in order."""
    return spans_non_overlapping(accepted_spans_by_document(document_ids=[document.pk]).get(document.pk, []))


def accepted_spans_by_document(*, document_ids: list[int]) -> dict[int, list[tuple[int, int, str]]]:
    """Every accepted entity of these documents as (start, end, label), by document, in order (start, then
    the longer first), overlaps included: one query for a batch of documents (the dataset builder's)."""
    spans: dict[int, list[tuple[int, int, str]]] = {}
    rows = (Annotation.objects.filter(document_id__in=document_ids, status=Annotation.Status.ACCEPTED)
            .order_by("document_id", "start", "-end", "id")
            .values_list("document_id", "start", "end", "label__name"))
    for document_id, start, end, label in rows.iterator(chunk_size=5000):
        spans.setdefault(document_id, []).append((start, end, label))
    return spans


def spans_non_overlapping(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Accepted spans in order; of two that overlap, the one that starts first (then the longer) stays."""
    kept: list[tuple[int, int, str]] = []
    last_end = -1
    for start, end, label in sorted(spans, key=lambda s: (s[0], -s[1])):
        if start >= last_end:
            kept.append((start, end, label))
            last_end = end
    return kept


def entity_types():
    return EntityType.objects.all()


@dataclass
class Segment:
    """A run of words on a review page: plain text, or one entity's words."""

    words: list[tuple[int, str, bool]] = field(default_factory=list)  # (index, text, line_end)
    annotation: Annotation | None = None


# The review page: one page of a document, cut into bounded pieces -----------------------------------------

@dataclass
class EntityOnPage:
    annotation: Annotation
    rects: list[tuple[float, float, float, float]]  # x, y, width, height in PDF points (one per line)


@dataclass
class ReviewPage:
    document: Document
    page: Page | None
    page_count: int
    piece: int  # 1-based
    piece_count: int
    word_range: tuple[int, int]  # document word indexes [start, end) shown as text
    segments: list[Segment]
    entities: list[EntityOnPage]  # every entity (not deleted) touching the piece, in reading order
    groups: list[tuple[EntityType, list[Annotation]]]
    counts: dict[str, int]
    truncated: bool  # more entities touch the piece than one response shows

    @property
    def shown_range(self) -> tuple[int, int]:
        """The words whose entities this response shows: the whole piece, or, when the entity list was cut
        short, up to the first word of the last entity listed (what follows it may not be listed)."""
        start, end = self.word_range
        if self.truncated and self.entities:
            end = max(start, min(end, self.entities[-1].annotation.start))
        return start, end


@dataclass
class PageSlice:
    """Words [first, last) of one page (page-relative), read without loading the rest of the page: the
    packed boxes and line keys are cut by the database (SUBSTR), and so are the word texts on PostgreSQL
    (jsonb_path_query_array); elsewhere the texts are cut after loading."""

    page: Page
    word_count: int  # the page's
    first: int
    last: int
    words: list[str]
    boxes: array  # float32 x0, y0, x1, y1 per word in the slice
    # (block, line) per word in the slice, plus the next word's when there is one
    lines: list[tuple[int, int]]

    def box(self, i: int) -> tuple[float, float, float, float]:
        k = 4 * (i - self.first)
        return self.boxes[k], self.boxes[k + 1], self.boxes[k + 2], self.boxes[k + 3]


def page_slice(*, document: Document, number: int, first: int, count: int) -> PageSlice | None:
    """The page's words [first, first + count) (clamped to the page), in two small queries."""
    meta = (Page.objects.filter(document=document, number=number).only("id", "number", "width", "height",
                                                                        "word_start", "document_id")
            .annotate(box_bytes=Length("boxes")).first())
    if meta is None:
        return None
    word_count = (meta.box_bytes or 0) // 16
    first = max(0, min(first, max(word_count - 1, 0)))
    last = min(first + count, word_count)
    fields = {"cut_boxes": Substr("boxes", first * 16 + 1, max(last - first, 1) * 16,
                                  output_field=BinaryField()),
              "cut_lines": Substr("lines", first * 8 + 1, (max(last - first, 1) + 1) * 8,
                                  output_field=BinaryField())}
    if connection.vendor == "postgresql":
        fields["cut_words"] = RawSQL("jsonb_path_query_array(words, %s)",
                                     (f"$[{first} to {max(last - 1, first)}]",),
                                     output_field=JSONField())
        row = Page.objects.filter(pk=meta.pk).annotate(**fields).values(*fields).get()
        words = row["cut_words"] if last > first else []
    else:
        row = Page.objects.filter(pk=meta.pk).annotate(**fields).values("words", *fields).get()
        words = row["words"][first:last]
    boxes = array("f")
    boxes.frombytes(bytes(row["cut_boxes"] or b"")[: (last - first) * 16])
    keys = array("i")
    keys.frombytes(bytes(row["cut_lines"] or b""))
    return PageSlice(meta, word_count, first, last, words, boxes,
                     list(zip(keys[0::2], keys[1::2], strict=True)))


def page_word_boxes(*, page: Page, first: int, count: int) -> list[tuple[float, float, float, float]]:
    """Boxes of the page's words [first, first + count) (page-relative), decoding only those."""
    flat = array("f")
    flat.frombytes(bytes(memoryview(page.boxes)[first * 16:(first + count) * 16]))
    return [(flat[i], flat[i + 1], flat[i + 2], flat[i + 3]) for i in range(0, len(flat), 4)]


def _segments(cut: PageSlice, annotations: list[Annotation]) -> list[Segment]:
    """Cut the slice's words into plain runs and entity runs (rejected entities show as plain text)."""
    line_end = [k + 1 >= len(cut.lines) or cut.lines[k + 1] != cut.lines[k]
                for k in range(cut.last - cut.first)]
    base = cut.page.word_start

    def words(a: int, b: int) -> list[tuple[int, str, bool]]:
        return [(base + j, cut.words[j - cut.first], line_end[j - cut.first]) for j in range(a, b)]

    segments: list[Segment] = []
    position = cut.first
    for annotation in sorted((a for a in annotations if a.status not in Annotation.INACTIVE),
                             key=lambda a: a.start):
        a_first, a_last = max(annotation.start - base, position), min(annotation.end - base, cut.last)
        if a_first >= a_last:
            continue
        if position < a_first:
            segments.append(Segment(words=words(position, a_first)))
        segments.append(Segment(words=words(a_first, a_last), annotation=annotation))
        position = a_last
    if position < cut.last:
        segments.append(Segment(words=words(position, cut.last)))
    return segments


def _rects(cut: PageSlice, annotation: Annotation) -> list[tuple[float, float, float, float]]:
    """One rectangle per PDF line that the entity's words (within the slice) occupy."""
    base = cut.page.word_start
    rects: list[list[float]] = []
    previous = None
    for i in range(max(annotation.start - base, cut.first), min(annotation.end - base, cut.last)):
        x0, y0, x1, y1 = cut.box(i)
        line = cut.lines[i - cut.first]
        if rects and line == previous:
            r = rects[-1]
            r[0], r[1], r[2], r[3] = min(r[0], x0), min(r[1], y0), max(r[2], x1), max(r[3], y1)
        else:
            rects.append([x0, y0, x1, y1])
        previous = line
    return [(round(x0, 1), round(y0, 1), round(x1 - x0, 1), round(y1 - y0, 1)) for x0, y0, x1, y1 in rects]


def review_page(*, document: Document, page_number: int, piece: int = 1) -> ReviewPage:
    """What the review page shows for one page of a document: at most DOCLOOP_REVIEW_PIECE_WORDS words as
    text and the entities that touch them, so a page of any size answers in bounded time and size."""
    piece_words = settings.DOCLOOP_REVIEW_PIECE_WORDS
    page_count = document.page_count or 0
    page_number = min(max(1, page_number), max(page_count, 1))
    counts = dict.fromkeys(Annotation.Status.values, 0)
    for status, count in (Annotation.objects.filter(document=document).values_list("status")
                          .annotate(n=Count("id")).order_by()):
        counts[status] = count
    cut = page_slice(document=document, number=page_number, first=(max(1, piece) - 1) * piece_words,
                     count=piece_words)
    if cut is None:
        return ReviewPage(document, None, page_count, 1, 1, (0, 0), [], [], [], counts, False)
    piece_count = max(1, -(-cut.word_count // piece_words))
    piece = cut.first // piece_words + 1
    start, end = cut.page.word_start + cut.first, cut.page.word_start + cut.last
    limit = settings.DOCLOOP_REVIEW_MAX_ENTITIES
    annotations = list(
        Annotation.objects.filter(document=document, start__lt=end, end__gt=start)
        .exclude(status=Annotation.Status.DELETED).select_related("label")
        .order_by("start", "id")[:limit + 1]
    )
    truncated = len(annotations) > limit
    annotations = annotations[:limit]
    entities = [EntityOnPage(a, _rects(cut, a)) for a in annotations]
    by_label: dict[int, tuple[EntityType, list[Annotation]]] = {}
    for annotation in annotations:
        by_label.setdefault(annotation.label_id, (annotation.label, []))[1].append(annotation)
    groups = sorted(by_label.values(), key=lambda pair: pair[0].name)
    return ReviewPage(document, cut.page, page_count, piece, piece_count, (start, end),
                      _segments(cut, annotations), entities, groups, counts, truncated)


def page_words_in_rect(*, page: Page, x0: float, y0: float, x1: float, y1: float,
                       limit: int) -> list[tuple[int, str, tuple[float, float, float, float]]]:
    """The page's words whose boxes intersect a rectangle (PDF points): (document index, text, box)."""
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    flat = array("f")
    flat.frombytes(bytes(page.boxes))
    hits = []
    for i in range(len(flat) // 4):
        k = 4 * i
        if flat[k] <= x1 and flat[k + 2] >= x0 and flat[k + 1] <= y1 and flat[k + 3] >= y0:
            hits.append(i)
            if len(hits) >= limit:
                break
    if not hits:
        return []
    cut = page_slice(document=page.document_id, number=page.number, first=hits[0],
                     count=hits[-1] - hits[0] + 1)
    return [(page.word_start + i, cut.words[i - cut.first], cut.box(i)) for i in hits]


# History ---------------------------------------------------------------------------------------------------

def document_history(*, document: Document, annotation_id: int | None = None):
    """The document's events, newest first (optionally one entity's)."""
    qs = AnnotationEvent.objects.filter(document=document).select_related("user", "model_version",
                                                                           "annotation")
    if annotation_id is not None:
        qs = qs.filter(annotation_id=annotation_id)
    return qs.order_by("-id")


def document_history_head(*, document: Document) -> int:
    return (AnnotationEvent.objects.filter(document=document).order_by("-id").values_list("id", flat=True)
            .first() or 0)


# The review queue ------------------------------------------------------------------------------------------

class QueueStatus:
    UPLOADED = "uploaded"
    EXTRACTING = "extracting"
    FAILED = "failed"
    TO_REVIEW = "to_review"
    IN_REVIEW = "in_review"
    REVIEWED = "reviewed"

    choices = [
        (UPLOADED, gettext_lazy("uploaded")),
        (EXTRACTING, gettext_lazy("extracting")),
        (FAILED, gettext_lazy("failed")),
        (TO_REVIEW, gettext_lazy("to review")),
        (IN_REVIEW, gettext_lazy("in review")),
        (REVIEWED, gettext_lazy("reviewed")),
    ]
    labels = dict(choices)


def presence_cutoff():
    return timezone.now() - timedelta(seconds=settings.DOCLOOP_PRESENCE_SECONDS)


def queue_status(document: Document, *, cutoff=None) -> str:
    if document.status != Document.Status.READY:
        return document.status
    if document.reviewed_at is not None:
        return QueueStatus.REVIEWED
    review = getattr(document, "review", None) if _has_review(document) else None
    if review is not None and review.seen_at is not None and review.seen_at >= (cutoff or presence_cutoff()):
        return QueueStatus.IN_REVIEW
    return QueueStatus.TO_REVIEW


def _has_review(document: Document) -> bool:
    try:
        document.review  # noqa: B018 (loaded by select_related; absent for documents never touched)
    except DocumentReview.DoesNotExist:
        return False
    return True


QUEUE_ORDERS = {
    "confidence": gettext_lazy("least confident first"),
    "newest": gettext_lazy("newest first"),
    "oldest": gettext_lazy("oldest first"),
    "name": gettext_lazy("name"),
}


def review_queue(*, status: str = "", search: str = "", order: str = "confidence",
                 uploader: int | None = None, model_version: int | None = None):
    """Documents as the queue lists them: one query with their review summary, whatever their number."""
    qs = Document.objects.select_related("uploaded_by", "review", "review__model_version", "review__seen_by")
    cutoff = presence_cutoff()
    ready_open = Q(status=Document.Status.READY, reviewed_at__isnull=True)
    open_now = DocumentReview.objects.filter(seen_at__gte=cutoff).values("document_id")
    filters = {
        QueueStatus.UPLOADED: Q(status=Document.Status.UPLOADED),
        QueueStatus.EXTRACTING: Q(status=Document.Status.EXTRACTING),
        QueueStatus.FAILED: Q(status=Document.Status.FAILED),
        QueueStatus.REVIEWED: Q(status=Document.Status.READY, reviewed_at__isnull=False),
        # Open now: a few documents. Tested against their id set (hashed once), not by joining every
        # document's review row (a probe per document: 34 ms of a 73 ms search on 10,000 documents).
        QueueStatus.IN_REVIEW: ready_open & Q(pk__in=open_now),
        QueueStatus.TO_REVIEW: ready_open & ~Q(pk__in=open_now),
    }
    if status in filters:
        qs = qs.filter(filters[status])
    if search:
        qs = qs.filter(document_search_filter(search=search))
    if uploader:
        qs = qs.filter(uploaded_by_id=uploader)
    if model_version:
        qs = qs.filter(review__model_version_id=model_version)
    if order == "newest":
        return qs.order_by("-created_at", "-id")
    if order == "oldest":
        return qs.order_by("created_at", "id")
    if order == "name":
        return qs.order_by("original_name", "id")
    # Least confident first: documents still to review before reviewed ones, then by the lowest entity
    # confidence of the model's predictions (documents without predictions last).
    return qs.order_by(F("reviewed_at").asc(nulls_first=True), F("least_confidence").asc(nulls_last=True),
                       F("id").desc())


# The document fields a queue row shows (annotation/templatetags/queue_table.py) or its status needs.
QUEUE_ROW_FIELDS = ("original_name", "page_count", "status", "error", "reviewed_at", "least_confidence",
                    "created_at")


def queue_rows(*, ids: list[int]) -> list[Document]:
    """The queue's rows for these ids, in this order, with everything a row shows (two queries, each by
    primary key: one five-table join had PostgreSQL scan every review summary)."""
    # Only the columns a row shows: loading whole rows (the model versions' JSON, every timestamp) was most of
    # this function's time. A deferred field read later would cost a query per row; the query-count test of
    # the queue (tests/annotation/test_views.py) would see it.
    username = get_user_model().USERNAME_FIELD
    reviews = Prefetch("review", queryset=DocumentReview.objects.select_related("model_version", "seen_by")
                       .only("document_id", "entity_count", "verified_count", "seen_at",
                             "model_version__task", "model_version__number", f"seen_by__{username}"))
    rows = (Document.objects.select_related("uploaded_by").prefetch_related(reviews).order_by()
            .only(*QUEUE_ROW_FIELDS, f"uploaded_by__{username}").in_bulk(ids))
    return [rows[pk] for pk in ids if pk in rows]


def review_queue_next(*, after: Document, user) -> Document | None:
    """The next document to review in the default queue order: ready, not reviewed, not `after`, and not
    open by someone else right now."""
    return (review_queue(order="confidence")
            .filter(status=Document.Status.READY, reviewed_at__isnull=True).exclude(pk=after.pk)
            .exclude(Q(review__seen_at__gte=presence_cutoff()) & ~Q(review__seen_by=user))
            .first())


# Finishing a review: what it would accept ---------------------------------------------------------------

@dataclass(frozen=True)
class PagePart:
    """One part of a page as the review page shows it (DOCLOOP_REVIEW_PIECE_WORDS words at a time)."""

    page: int
    piece: int  # 1-based
    piece_count: int


@dataclass
class FinishSummary:
    """What marking a document reviewed would accept as `user`'s decision, and what they have not opened.

    `standing`: predicted entities still standing; `unseen`: those of them that the review page has not
    shown this reviewer since they were last predicted (their part of the page never opened, or opened
    before); `lowest` / `lowest_unseen`: the least confident of each; `unopened`: the page parts this reviewer
    never opened; `standing_class`: the document's class, when it is still a prediction. `token` names this
    state (the newest event and the class's revision): a confirmation based on another token is stale.
    """

    standing: int
    unseen: int
    lowest: Annotation | None
    lowest_unseen: Annotation | None
    unopened: list[PagePart]
    page_count: int
    standing_class: DocumentClassification | None
    token: str

    @property
    def accepts_anything(self) -> bool:
        return bool(self.standing or self.standing_class)

    @property
    def unopened_text(self) -> str:
        """The unopened parts in words, in page order: "page 1 (words part 2 of 2); pages 3–5"."""
        by_page: dict[int, list[PagePart]] = {}
        for part in self.unopened:
            by_page.setdefault(part.page, []).append(part)
        texts: list[str] = []
        run: list[int] = []  # consecutive pages never opened at all

        def close_run() -> None:
            if run:
                texts.append(gettext("page %(page)s") % {"page": run[0]} if len(run) == 1
                             else gettext("pages %(first)s–%(last)s") % {"first": run[0], "last": run[-1]})
                run.clear()

        for page, parts in sorted(by_page.items()):
            if len(parts) == parts[0].piece_count:
                if run and run[-1] != page - 1:
                    close_run()
                run.append(page)
                continue
            close_run()
            texts.append(ngettext("page %(page)s (words part %(parts)s of %(count)s)",
                                  "page %(page)s (words parts %(parts)s of %(count)s)", len(parts))
                         % {"page": page, "parts": ", ".join(str(p.piece) for p in parts),
                            "count": parts[0].piece_count})
        close_run()
        return "; ".join(texts)


def _covered(intervals: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether the union of `intervals` covers [start, end)."""
    reach = start
    for a, b in sorted(intervals):
        if a > reach:
            break
        reach = max(reach, b)
        if reach >= end:
            return True
    return reach >= end


def review_unopened_parts(*, document: Document, user) -> tuple[list[PagePart], int]:
    """The parts of the document's pages that the review page never showed `user` (in page order), and the
    number of pages. A page without words counts as opened once it was shown at all."""
    piece_words = settings.DOCLOOP_REVIEW_PIECE_WORDS
    opened: dict[int, list[tuple[int, int]]] = {}
    for number, start, end in (ReviewOpening.objects.filter(document=document, user=user)
                               .values_list("page_number", "word_start", "word_end")):
        opened.setdefault(number, []).append((start, end))
    pages = (Page.objects.filter(document=document).order_by("number")
             .annotate(box_bytes=Length("boxes")).values_list("number", "word_start", "box_bytes"))
    unopened: list[PagePart] = []
    page_count = 0
    for number, word_start, box_bytes in pages:
        page_count += 1
        count = (box_bytes or 0) // 16
        intervals = opened.get(number, [])
        piece_count = max(1, -(-count // piece_words))
        for k in range(piece_count):
            start = word_start + k * piece_words
            end = min(start + piece_words, word_start + count)
            if not (_covered(intervals, start, end) if end > start else intervals):
                unopened.append(PagePart(number, k + 1, piece_count))
    return unopened, page_count


def review_finish_summary(*, document: Document, user) -> FinishSummary:
    """What finishing the review of `document` would accept as `user`'s (see FinishSummary)."""
    standing = Annotation.objects.filter(document=document, status=Annotation.Status.PREDICTED)
    shown = ReviewOpening.objects.filter(document=document, user=user, word_start__lt=OuterRef("end"),
                                         word_end__gt=OuterRef("start"),
                                         opened_at__gte=OuterRef("updated_at"))
    unseen = standing.exclude(Exists(shown))
    by_confidence = (F("score").asc(nulls_last=True), "start", "id")
    unopened, page_count = review_unopened_parts(document=document, user=user)
    classification = (DocumentClassification.objects.select_related("label").filter(document=document)
                      .first())
    head = (AnnotationEvent.objects.filter(document=document).order_by("-id").values_list("id", flat=True)
            .first() or 0)
    return FinishSummary(
        standing=standing.count(), unseen=unseen.count(),
        lowest=standing.select_related("label").order_by(*by_confidence).first(),
        lowest_unseen=unseen.select_related("label").order_by(*by_confidence).first(),
        unopened=unopened, page_count=page_count,
        standing_class=(classification
                        if classification and classification.status == Annotation.Status.PREDICTED
                        else None),
        token=f"{head}.{classification.revision if classification else 0}",
    )


# Predictions on their way ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class PredictionState:
    """Whether a model's predictions are still on their way to a document, and why the active version's
    prediction failed ("" when it did not)."""

    pending: bool = False
    failed: str = ""


def document_predictions(*, document: Document) -> PredictionState:
    """The document's predictions as the job writing them sees it. Predictions are `training`'s: read through
    the DOCLOOP_PREDICTIONS_STATE hook, so this app imports nothing from it."""
    from django.utils.module_loading import import_string

    return import_string(settings.DOCLOOP_PREDICTIONS_STATE)(document_id=document.pk)


def document_predictions_pending(*, document: Document) -> bool:
    """True while a model's predictions for the document are queued or being written: its review cannot be
    finished yet (a finish then would accept nothing, and the predictions would land on a reviewed
    document)."""
    return document_predictions(document=document).pending

from __future__ import annotations

from array import array

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from lib.jobs import JobRow


def document_upload_to(instance: Document, filename: str) -> str:
    # Content-addressed: the same bytes always land at the same key, whatever the upload was called.
    return f"documents/{instance.sha256[:2]}/{instance.sha256}.pdf"


class Document(JobRow):
    """One uploaded PDF. Its ingestion is a job row (lib.jobs): uploaded (queued) → extracting (running) →
    ready or failed."""

    class Status(models.TextChoices):
        UPLOADED = "uploaded", _("uploaded")
        EXTRACTING = "extracting", _("extracting")
        READY = "ready", _("ready")
        FAILED = "failed", _("failed")

    file = models.FileField(_("file"), upload_to=document_upload_to, max_length=255)
    original_name = models.CharField(_("original name"), max_length=255)
    sha256 = models.CharField(_("SHA-256"), max_length=64, unique=True)
    size = models.PositiveBigIntegerField(_("size in bytes"))
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.UPLOADED)
    error = models.TextField(_("error"), blank=True)
    page_count = models.PositiveIntegerField(_("pages"), null=True, blank=True)
    word_count = models.PositiveIntegerField(_("words"), null=True, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("uploaded by"),
    )
    reviewed_at = models.DateTimeField(_("reviewed at"), null=True, blank=True)
    # The lowest confidence among the model's entities, kept by annotation.services with the review summary:
    # the queue's default order ("least confident first", docs/architecture.md) is on this table alone, so
    # an index serves it (migration 0005) instead of sorting every document on each request.
    least_confidence = models.FloatField(_("least entity confidence"), null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("reviewed by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("document")
        verbose_name_plural = _("documents")
        indexes = [models.Index(fields=["status"]), models.Index(fields=["reviewed_at"])]

    def __str__(self) -> str:
        return self.original_name

    @property
    def is_reviewed(self) -> bool:
        return self.reviewed_at is not None


class Page(models.Model):
    """One PDF page: its text and its words in reading order (block, line, word).

    `words` holds the words' texts. Their boxes (x0, y0, x1, y1 in PDF points, float32) and their
    (block, line) numbers (int32 pairs) are packed arrays, one entry per word: ingesting a long PDF then
    costs little more than PyMuPDF's own extraction. `word_start` is the index of the page's first word
    in the document's word sequence, so entity spans [start, end) index words across pages.
    """

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="pages")
    number = models.PositiveIntegerField(_("number"))
    width = models.FloatField(_("width"))
    height = models.FloatField(_("height"))
    text = models.TextField(_("text"), blank=True)
    words = models.JSONField(_("words"), default=list)
    boxes = models.BinaryField(_("word boxes"), default=bytes)
    lines = models.BinaryField(_("word lines"), default=bytes)
    word_start = models.PositiveIntegerField(_("first word index"))
    # Scanned pages: their words were read by Tesseract (documents.pdf), with its mean word confidence.
    ocr = models.BooleanField(_("OCR"), default=False)
    ocr_confidence = models.FloatField(_("OCR confidence"), null=True, blank=True)

    class Meta:
        ordering = ["document", "number"]
        verbose_name = _("page")
        verbose_name_plural = _("pages")
        constraints = [models.UniqueConstraint(fields=["document", "number"], name="page_unique_number")]

    def __str__(self) -> str:
        return f"{self.document} p.{self.number}"

    @property
    def word_end(self) -> int:
        return self.word_start + len(self.words)

    @property
    def word_boxes(self) -> list[tuple[float, float, float, float]]:
        flat = array("f")
        flat.frombytes(bytes(self.boxes))
        return [(round(flat[i], 2), round(flat[i + 1], 2), round(flat[i + 2], 2), round(flat[i + 3], 2))
                for i in range(0, len(flat), 4)]

    @property
    def line_ends(self) -> list[bool]:
        """True for the last word of each PDF line."""
        keys = array("i")
        keys.frombytes(bytes(self.lines))
        pairs = list(zip(keys[0::2], keys[1::2], strict=True))
        return [i + 1 == len(pairs) or pairs[i + 1] != pairs[i] for i in range(len(pairs))]

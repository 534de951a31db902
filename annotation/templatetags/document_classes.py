"""Template tags that show a document's class (text classification): the queue's class column
(annotation/queue.html, through queue_table's rows) and the review page's class panel."""

from __future__ import annotations

from django import template
from django.template.defaultfilters import floatformat
from django.utils.html import escape
from django.utils.safestring import mark_safe

from annotation.models import DocumentClass, DocumentClassification

register = template.Library()


@register.simple_tag
def document_classes(documents) -> dict[int, DocumentClassification]:
    """The classifications of a page of documents, by document id, in one query."""
    ids = [document.pk for document in documents]
    rows = DocumentClassification.objects.filter(document_id__in=ids).select_related("label")
    return {row.document_id: row for row in rows}


@register.simple_tag
def document_class_badge(classification: DocumentClassification | None) -> str:
    return class_badge(classification)


def class_badge(classification: DocumentClassification | None) -> str:
    """A document's class as a badge coloured like its label, with the model's confidence while it is a
    prediction; "–" without a class. Built in Python: the queue shows one per row."""
    if classification is None:
        return "–"
    score = "" if classification.score is None else floatformat(classification.score, 2)
    title = escape(classification.get_status_display()) + (f" · {score}" if score else "")
    shown = f" {score}" if classification.status == "predicted" and score else ""
    return mark_safe(f'<span class="badge doc-class status-{escape(classification.status)}" '
                     f'style="--entity-color: {escape(classification.label.color)}" title="{title}">'
                     f"{escape(classification.label.name)}{shown}</span>")


@register.inclusion_tag("annotation/_document_class.html", takes_context=True)
def document_class_panel(context, document) -> dict:
    """The review page's panel: the class, the model's confidence, and the controls to review it."""
    classification = DocumentClassification.objects.filter(document=document).select_related(
        "label", "model_version", "reviewer").defer("model_version__labels", "model_version__metrics").first()
    return {"document": document, "classification": classification, "classes": DocumentClass.objects.all(),
            "error": context.get("class_error", ""), "request": context.get("request"),
            "csrf_token": context.get("csrf_token")}

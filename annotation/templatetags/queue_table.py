"""The queue's table rows, built in Python: 50 rows of ten cells are about 2,000 template nodes, most of the
queue page's time under load (bench/review_page.py). The markup is the one a template would write; the
tests and upload.js read it (data-document, data-status, status-* classes)."""

from __future__ import annotations

from django import template
from django.template.defaultfilters import floatformat
from django.utils.formats import date_format
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.text import Truncator
from django.utils.timezone import template_localtime

from annotation.templatetags.document_classes import class_badge

register = template.Library()


def short_datetime(value) -> str:
    """What `{{ value|date:"SHORT_DATETIME_FORMAT" }}` writes: in the current time zone and language."""
    return date_format(template_localtime(value), "SHORT_DATETIME_FORMAT")


def _row(document, status: str, status_label, links: dict, classification, *, reviewer: bool,
         review_label) -> str:
    review = getattr(document, "review", None)  # documents not yet extracted have no review summary
    pk = document.pk
    name = f'<a href="{links["detail"]}">{escape(document.original_name)}</a>'
    if links["pages"]:
        name += f' <small class="hint">{escape(links["pages"])}</small>'
    state = f'<span class="status status-{status}" data-status="{status}">{escape(status_label)}</span>'
    if status == "in_review" and review is not None and review.seen_by_id:
        state += f' <small class="hint">{escape(review.seen_by.get_username())}</small>'
    if status == "reviewed" and document.reviewed_at:
        state += f' <small class="hint">{escape(short_datetime(document.reviewed_at))}</small>'
    if document.error:
        state += f' <span class="error-text">{escape(Truncator(document.error).chars(80))}</span>'
    progress = confidence = version = "–"
    if review is not None:
        if review.entity_count:
            done = f"{review.verified_count}/{review.entity_count}"
            width = round(review.verified_count / review.entity_count * 100)
            progress = (f'<span class="progress" title="{done}"><span style="width: {width}%"></span></span> '
                        f"{done}")
        if review.model_version_id:
            version = f'<a href="?model_version={review.model_version_id}">{escape(review.model_version)}</a>'
    if document.least_confidence is not None:
        confidence = floatformat(document.least_confidence, 2)
    uploader = "–"
    if document.uploaded_by_id:
        uploader = (f'<a href="?uploader={document.uploaded_by_id}">'
                    f"{escape(document.uploaded_by.get_username())}</a>")
    action = ""
    if document.status == "ready" and reviewer:
        action = f'<a href="{links["review"]}">{escape(review_label)}</a>'
    return (f'<tr data-document="{pk}"><td>{pk}</td><td>{name}</td><td>{state}</td>'
            f"<td>{class_badge(classification)}</td>"
            f"<td>{progress}</td><td>{confidence}</td><td>{version}</td><td>{uploader}</td>"
            f"<td>{escape(short_datetime(document.created_at))}</td><td>{action}</td></tr>\n")


@register.simple_tag
def queue_rows(rows, classes: dict, reviewer: bool, review_label) -> str:
    """The <tr> of each (document, status, status label, links) row of the queue view."""
    return mark_safe("".join(
        _row(document, status, label, links, classes.get(document.pk), reviewer=reviewer,
             review_label=review_label)
        for document, status, label, links in rows))

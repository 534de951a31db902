"""The review page's repeated parts, built in Python: the text view (one span per word is thousands of
template nodes a page), the boxes over the page image and the entity list. These loops were most of the
page's time under load (bench/review_page.py); the markup is what the templates wrote, and review.js and
the browser tests read it."""

from __future__ import annotations

from html import escape  # plain str here: Django's lazy-aware escape cost twice as much, 1,000 calls a page

from django import template
from django.utils.formats import get_format
from django.utils.safestring import mark_safe
from django.utils.text import Truncator
from django.utils.translation import gettext as _

from annotation.models import Annotation

register = template.Library()


def _words(words) -> str:
    return "".join(f'<span class="w" data-i="{index}">{escape(text)}</span>{"<br>" if line_end else " "}'
                   for index, text, line_end in words)


def _states() -> dict[str, str]:
    """Each status's display label, escaped (get_status_display, once a render rather than once an entity)."""
    return {value: escape(str(label)) for value, label in Annotation.Status.choices}


@register.simple_tag
def text_view(segments) -> str:
    states = _states()
    parts = []
    for segment in segments:
        a = segment.annotation
        if a is None:
            parts.append(_words(segment.words))
            continue
        label = escape(a.label.name)
        parts.append(f'<mark class="entity status-{escape(a.status)}" '
                     f'style="--entity-color: {escape(a.label.color)}" '
                     f'id="entity-{a.pk}" data-annotation="{a.pk}" '
                     f'title="{label} · {states.get(a.status, "")}">'
                     f'{_words(segment.words)}<sup>{label}</sup></mark> ')
    return mark_safe("".join(parts))


@register.simple_tag
def overlay_boxes(entities) -> str:
    """The page image's SVG overlay: one <g> per entity that is not rejected, one <rect> per line it spans
    (PDF points, unlocalized)."""
    return mark_safe("".join(
        f'<g class="box status-{escape(item.annotation.status)}" data-annotation="{item.annotation.pk}" '
        f'style="--entity-color: {escape(item.annotation.label.color)}">'
        + "".join(f'<rect x="{x}" y="{y}" width="{w}" height="{h}"/>' for x, y, w, h in item.rects) + "</g>"
        for item in entities if item.annotation.status != "rejected"))


@register.simple_tag
def entity_items(annotations, page_number, piece) -> str:
    """The entity list's items of one type: text, state and confidence, with the quick accept / reject
    buttons (review.js reads the data-* attributes)."""
    accept = f'<button type="button" class="small" data-act="accept">{escape(_("Accept"))}</button>'
    reject = f'<button type="button" class="small secondary" data-act="reject">{escape(_("Reject"))}</button>'
    states = _states()
    # floatformat's localized output, without its Decimal arithmetic
    decimal = get_format("DECIMAL_SEPARATOR")
    items = []
    for a in annotations:
        human = " human" if a.source == "human" else ""
        score = "" if a.score is None else f" · {a.score:.2f}".replace(".", decimal)
        items.append(
            f'<li class="e status-{escape(a.status)}{human}" data-annotation="{a.pk}" '
            f'data-rev="{a.revision}" data-label="{a.label_id}" data-start="{a.start}" data-end="{a.end}">'
            f'<a href="?page={page_number or 1}&amp;piece={piece}&amp;entity={a.pk}" class="text">'
            f"{escape(Truncator(a.text).chars(60))}</a> "
            f'<small class="state">{states.get(a.status, escape(a.status))}{score}</small> '
            f'<span class="quick">{accept if a.status != "accepted" else ""}'
            f'{reject if a.status != "rejected" else ""}</span></li>\n')
    return mark_safe("".join(items))

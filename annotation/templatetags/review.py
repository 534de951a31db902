"""The review page's text view, built in Python: one span per word is thousands of template nodes a page,
and this is the hottest part of the page (see bench/review_page.py)."""

from __future__ import annotations

from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

register = template.Library()


def _words(words) -> str:
    return "".join(f'<span class="w" data-i="{index}">{escape(text)}</span>{"<br>" if line_end else " "}'
                   for index, text, line_end in words)


@register.simple_tag
def text_view(segments) -> str:
    parts = []
    for segment in segments:
        a = segment.annotation
        if a is None:
            parts.append(_words(segment.words))
            continue
        label = escape(a.label.name)
        parts.append(f'<mark class="entity status-{escape(a.status)}" style="--entity-color: {escape(a.label.color)}" '
                     f'id="entity-{a.pk}" data-annotation="{a.pk}" title="{label} · {escape(a.get_status_display())}">'
                     f'{_words(segment.words)}<sup>{label}</sup></mark> ')
    return mark_safe("".join(parts))

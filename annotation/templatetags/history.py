"""The history page's before / after states: events store an entity's status as its value ("accepted"),
shown in the reader's language."""

from __future__ import annotations

from django import template

from annotation.models import Annotation

register = template.Library()


@register.filter
def status_label(value: str) -> str:
    """The display label of an Annotation.Status value; an unknown value is shown as it is."""
    return str(dict(Annotation.Status.choices).get(value, value))

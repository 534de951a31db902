"""How good the active model is (training.selectors.model_quality), as a badge other apps' pages show: the
review page and the queue (annotation's templates load this library; the annotation app itself imports
nothing from training) and the models page, with the per-label table."""

from __future__ import annotations

from django import template

from training.registry import TASKS
from training.selectors import ModelQuality, model_qualities

register = template.Library()


def qualities_for_request(request) -> dict[str, ModelQuality]:
    """Every task's quality, computed once per request (three queries) however many badges a page shows."""
    cached = getattr(request, "_docloop_model_quality", None) if request is not None else None
    if cached is None:
        cached = model_qualities(tasks=list(TASKS))
        if request is not None:
            request._docloop_model_quality = cached
    return cached


@register.inclusion_tag("training/_model_quality.html", takes_context=True)
def model_quality_badges(context, every_task: bool = False, open: bool = False) -> dict:
    """A badge per task with an active version (the registry's first task's, the entity model's, "no model"
    when there is none at all; `every_task`: each task, with a model or not); each opens to the verdict, where
    it was measured and the F1 per label with its support. `open`: shown opened (the models page)."""
    qualities = qualities_for_request(context.get("request"))
    shown = [q for q in qualities.values() if every_task or q.version is not None]
    if not shown:
        shown = [next(iter(qualities.values()))]
    return {"qualities": shown, "open": open}

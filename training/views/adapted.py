"""Adapted base models: the list (with the corpus the next adaptation would read), one adaptation's page
with its live progress, and the admins' start and cancel buttons. Thin views over
training.services.adaptation and the selectors."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from lib.decorators import admin_required, reviewer_required
from lib.roles import is_admin
from training.models import AdaptedBase
from training.selectors import (
    adaptation_corpus_size,
    adaptation_due,
    adapted_base_newest,
    adapted_base_progress,
)
from training.services.adaptation import (
    ACTIVE,
    adapted_base_cancel,
    adapted_base_create,
    adapted_base_enqueue,
)


@require_GET
@reviewer_required
@vary_on_headers("HX-Request")
def adapted_list(request):
    rows = list(AdaptedBase.objects.select_related("created_by").order_by("-created_at", "-id")[:100])
    template = "training/adapted_list.html"
    if request.htmx:
        template += "#adapted-table"
    return render(request, template, {
        "rows": rows, "pending": any(row.status in ACTIVE for row in rows),
        "corpus": adaptation_corpus_size(),
        "newest": adapted_base_newest(), "due": adaptation_due(), "base_model": settings.DOCLOOP_BASE_MODEL,
        "auto": settings.DOCLOOP_ADAPT_AUTO, "min_words": settings.DOCLOOP_ADAPT_MIN_WORDS,
        "growth_percent": round(100 * settings.DOCLOOP_ADAPT_GROWTH), "steps": settings.DOCLOOP_ADAPT_STEPS,
        "can_adapt": is_admin(request.user),
    })


@require_GET
@reviewer_required
@vary_on_headers("HX-Request")
def adapted_page(request, pk: int):
    adapted = get_object_or_404(AdaptedBase.objects.select_related("created_by", "cancelled_by"), pk=pk)
    template = "training/adapted.html"
    if request.htmx:
        template += "#adapted-status"
    return render(request, template, {
        "adapted": adapted, "progress": adapted_base_progress(adapted=adapted),
        "active": adapted.status in ACTIVE,
        "runs": adapted.runs.select_related("model_version").order_by("-created_at", "-id")[:50],
        "is_newest": adapted == adapted_base_newest(base_model=adapted.base_model),
        "can_adapt": is_admin(request.user),
    })


@require_POST
@admin_required
def adapted_start(request):
    try:
        adapted = adapted_base_create(user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("training:adapted-list")
    adapted_base_enqueue(adapted=adapted)
    messages.success(request, _("Adaptation #%(id)s is queued.") % {"id": adapted.pk})
    return redirect("training:adapted", pk=adapted.pk)


@require_POST
@admin_required
def adapted_cancel(request, pk: int):
    adapted = get_object_or_404(AdaptedBase, pk=pk)
    if adapted_base_cancel(adapted=adapted, user=request.user):
        messages.success(request, _("Adaptation #%(id)s was cancelled.") % {"id": adapted.pk})
    else:
        messages.error(request, _("Adaptation #%(id)s is not queued or running; nothing to cancel.")
                       % {"id": adapted.pk})
    return redirect("training:adapted", pk=adapted.pk)

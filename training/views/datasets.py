"""Dataset pages (list, Excel upload with validation, detail, downloads) and their JSON API."""

from __future__ import annotations

from pathlib import PurePosixPath

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from lib.decorators import admin_required, reviewer_required
from lib.inputs import (
    InputError,
    choice_field,
    id_list_field,
    moment_field,
    request_data,
    text_field,
    text_list_field,
)
from lib.roles import is_admin, is_reviewer
from training.api import api_error, api_view
from training.dataset_builder import FINISH_TREATMENTS, DatasetFilters
from training.forms import DatasetBuildForm, DatasetUploadForm
from training.models import Dataset, Task
from training.selectors import dataset_list, dataset_preview
from training.services.datasets import (
    DatasetRefused,
    dataset_build,
    dataset_excel_validate,
    dataset_parquet,
    dataset_upload,
    finish_treatment_default,
)

FORMATS = {
    "jsonl": ("file", "application/jsonl"),
    "parquet": ("parquet_file", "application/vnd.apache.parquet"),
    "xlsx": ("original_file", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}


# Pages ------------------------------------------------------------------------------------------------------

def _list_context(**extra) -> dict:
    return {"datasets": dataset_list()[:100], "form": DatasetUploadForm(), "build_form": DatasetBuildForm(),
            **extra}


@require_GET
@reviewer_required
def datasets_index(request):
    return render(request, "training/datasets.html", _list_context())


def _problems_as_form_errors(form: DatasetUploadForm, content) -> None:
    for line in content.problem_lines():
        form.add_error("file", line)


@require_POST
@admin_required
@vary_on_headers("HX-Request")
def dataset_upload_page(request):
    """Validate (the "validate" button: preview and statistics, nothing stored) or store a workbook."""
    form = DatasetUploadForm(request.POST, request.FILES)
    template = "training/datasets.html"
    if request.htmx:
        template += "#dataset-check"
    if not form.is_valid():
        return render(request, template, _list_context(form=form), status=422)
    data = form.cleaned_data
    if request.POST.get("action") == "validate":
        check = dataset_excel_validate(file=data["file"], task=data["task"], sheet=data["sheet"])
        if not check.ok:
            _problems_as_form_errors(form, check.content)
        return render(request, template, _list_context(form=form, check=check),
                      status=200 if check.ok else 422)
    try:
        dataset, created = dataset_upload(file=data["file"], task=data["task"], sheet=data["sheet"],
                                          name=data["name"], user=request.user)
    except DatasetRefused as exc:
        _problems_as_form_errors(form, exc.content)
        return render(request, template, _list_context(form=form), status=422)
    if created:
        messages.success(request, _("Dataset #%(id)s was stored.") % {"id": dataset.pk})
    return _to_dataset(request, dataset, created=created)


def _to_dataset(request, dataset: Dataset, *, created: bool):
    """On to the dataset's page (a full redirect from an HTMX form too), saying when nothing new was
    stored."""
    if not created:
        messages.info(request, _("This content is already dataset #%(id)s; nothing new was stored.")
                      % {"id": dataset.pk})
    url = reverse("training:dataset", args=[dataset.pk])
    if request.htmx:
        from django_htmx.http import HttpResponseClientRedirect

        return HttpResponseClientRedirect(url)
    return redirect(url)


@require_POST
@admin_required
@vary_on_headers("HX-Request")
def dataset_build_page(request):
    """Snapshot the reviewed documents with the filters of `manage.py build_dataset` (the datasets page's
    form): on to the dataset's page, or the form again with each problem beside its field (422)."""
    form = DatasetBuildForm(request.POST)
    template = "training/datasets.html"
    if request.htmx:
        template += "#dataset-build"
    if form.is_valid():
        data = form.cleaned_data
        try:
            dataset, created = dataset_build(
                task=data["task"], filters=form.filters(), user=request.user, seed=data["seed"],
                name=data["name"], validation_fraction=data["validation_fraction"],
                test_fraction=data["test_fraction"])
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            if created:
                count = dataset.statistics.get("documents", 0)
                messages.success(request, ngettext("Dataset #%(id)s was built from %(count)d reviewed "
                                                   "document.",
                                                   "Dataset #%(id)s was built from %(count)d reviewed "
                                                   "documents.",
                                                   count) % {"id": dataset.pk, "count": count})
            return _to_dataset(request, dataset, created=created)
    return render(request, template, _list_context(build_form=form), status=422)


@require_GET
@reviewer_required
def dataset_detail(request, pk: int):
    dataset = get_object_or_404(Dataset.objects.select_related("created_by"), pk=pk)
    return render(request, "training/dataset.html", {
        "dataset": dataset, "preview": dataset_preview(dataset=dataset),
        "runs": dataset.runs.select_related("model_version").order_by("-created_at")[:20],
        "split_counts": {name: len(dataset.split.get(name, [])) for name in ("train", "validation", "test")},
    })


def _file_response(dataset: Dataset, fmt: str) -> FileResponse:
    if fmt not in FORMATS:
        raise Http404
    field, content_type = FORMATS[fmt]
    if fmt == "parquet":
        dataset_parquet(dataset=dataset)  # written from the JSONL at the first download
    key = getattr(dataset, field)
    if not key or not default_storage.exists(key):
        raise Http404(_("This dataset has no %(format)s file.") % {"format": fmt})
    filename = f"dataset-{dataset.pk}-{dataset.sha256[:12]}{PurePosixPath(key).suffix}"
    return FileResponse(default_storage.open(key, "rb"), as_attachment=True, filename=filename,
                        content_type=content_type)


@require_GET
@reviewer_required
def dataset_download(request, pk: int, fmt: str):
    return _file_response(get_object_or_404(Dataset, pk=pk), fmt)


# JSON API ---------------------------------------------------------------------------------------------------

def dataset_json(dataset: Dataset, request, *, full: bool = False) -> dict:
    downloads = {fmt: request.build_absolute_uri(reverse("training:api-dataset-download",
                                                         args=[dataset.pk, fmt]))
                 for fmt, (field, _type) in FORMATS.items() if fmt == "parquet" or getattr(dataset, field)}
    data = {
        "id": dataset.pk, "task": dataset.task, "source": dataset.source, "name": dataset.name,
        "sha256": dataset.sha256, "labels": dataset.labels, "statistics": dataset.statistics,
        "split_seed": dataset.split_seed, "validation_fraction": dataset.validation_fraction,
        "test_fraction": dataset.test_fraction, "filters": dataset.filters, "size": dataset.size,
        "created_by": dataset.created_by.get_username() if dataset.created_by else None,
        "created_at": dataset.created_at, "downloads": downloads,
    }
    if full:
        data["split"] = dataset.split
    return data


def _problems_json(content, status: int = 422) -> JsonResponse:
    return api_error(_("The workbook was refused: %(count)d problem(s).") % {
        "count": len(content.problems) + content.more_problems},
        status=status, problems=content.problem_dicts(), more_problems=content.more_problems)


@require_GET
@api_view(allowed=is_reviewer)
def api_index(request):
    """The API's entry point: the datasets with their statistics and hashes, and where the rest lives."""
    return JsonResponse({
        "datasets": [dataset_json(d, request) for d in dataset_list()[:100]],
        "links": {"datasets": request.build_absolute_uri(reverse("training:api-datasets")),
                  "validate": request.build_absolute_uri(reverse("training:api-dataset-validate")),
                  "build": request.build_absolute_uri(reverse("training:api-dataset-build")),
                  "runs": request.build_absolute_uri(reverse("training:api-runs"))},
    })


@require_http_methods(["GET", "POST"])
@api_view(allowed=is_reviewer)
def api_datasets(request):
    """GET: the datasets. POST (admins): upload a workbook (`file`, optional `task`, `sheet`, `name`);
    201 when stored, 200 with the existing dataset when the content is known, 422 with the problems."""
    if request.method == "GET":
        return JsonResponse({"datasets": [dataset_json(d, request) for d in dataset_list()[:500]]})
    if not is_admin(request.user):
        return api_error(_("Only admins can add datasets."), status=403)
    try:
        upload = request.FILES.get("file")
        fields = _upload_fields(request)
    except InputError as exc:
        return api_error(str(exc), status=exc.status)
    if upload is None:
        return api_error(_("Send the workbook as the multipart field “file”."), status=400)
    try:
        dataset, created = dataset_upload(file=upload, user=request.user, **fields)
    except DatasetRefused as exc:
        return _problems_json(exc.content)
    return JsonResponse({"created": created, "dataset": dataset_json(dataset, request, full=True)},
                        status=201 if created else 200)


def _upload_fields(request) -> dict:
    """The workbook's optional form fields: `task`, `sheet`, `name` (InputError for a bad one)."""
    data = request_data(request)
    return {"task": choice_field(data, "task", choices=Task.values),
            "sheet": text_field(data, "sheet", max_length=255) or None,
            "name": text_field(data, "name", max_length=NAME_LENGTH)}


@require_POST
@api_view(allowed=is_reviewer)
def api_dataset_validate(request):
    """Check a workbook and store nothing: 200 with the task, statistics, hash and preview, or 422 with
    every problem (row, column, cell, message)."""
    try:
        upload = request.FILES.get("file")
        fields = _upload_fields(request)
    except InputError as exc:
        return api_error(str(exc), status=exc.status)
    if upload is None:
        return api_error(_("Send the workbook as the multipart field “file”."), status=400)
    check = dataset_excel_validate(file=upload, task=fields["task"], sheet=fields["sheet"])
    if not check.ok:
        return _problems_json(check.content)
    return JsonResponse({
        "valid": True, "task": check.content.task, "sheet": check.content.sheet, "sha256": check.sha256,
        "labels": check.labels, "statistics": check.statistics, "preview": check.content.preview,
        "existing": dataset_json(check.existing, request) if check.existing else None,
    })


NAME_LENGTH = Dataset._meta.get_field("name").max_length


def _build_filters(body: dict) -> DatasetFilters:
    """The filters of a build request, each field of its type (lib.inputs refuses anything else)."""
    labels = text_list_field(body, "labels", max_length=100)
    return DatasetFilters(labels=tuple(sorted(set(labels))),
                          reviewed_before=moment_field(body, "reviewed_before"),
                          document_ids=tuple(id_list_field(body, "document_ids")), **_finish_fields(body))


def _finish_fields(body: dict) -> dict:
    """`finish_accepted` (keep, exclude or weight) and `finish_weight` (above 0 and below 1), each the
    configured default when absent."""
    fields = finish_treatment_default()
    treatment = choice_field(body, "finish_accepted", choices=FINISH_TREATMENTS)
    if treatment is not None:
        fields["finish_accepted"] = treatment
    raw = body.get("finish_weight")
    if raw not in (None, ""):
        try:
            weight = float(raw) if isinstance(raw, int | float | str) and not isinstance(raw, bool) else None
        except ValueError:
            weight = None
        if weight is None or not 0 < weight < 1:
            raise InputError(_("“%(field)s” must be a number above 0 and below 1.")
                             % {"field": "finish_weight"})
        fields["finish_weight"] = weight
    return fields


@require_POST
@api_view(allowed=is_admin)
def api_dataset_build(request):
    """Snapshot the reviewed documents (admins): `task`, optional `labels`, `reviewed_before`, `document_ids`,
    `name`, `finish_accepted`, `finish_weight`, as JSON or form fields. 422 with the reason for a field of the
    wrong type or value."""
    try:
        body = request_data(request)
        task = choice_field(body, "task", choices=Task.values, required=True)
        filters = _build_filters(body)
        name = text_field(body, "name", max_length=NAME_LENGTH)
        dataset, created = dataset_build(task=task, filters=filters, user=request.user, name=name)
    except InputError as exc:
        return api_error(str(exc), status=413 if exc.status == 413 else 422)
    except ValidationError as exc:
        return api_error(" ".join(exc.messages), status=422)
    return JsonResponse({"created": created, "dataset": dataset_json(dataset, request, full=True)},
                        status=201 if created else 200)


@require_GET
@api_view(allowed=is_reviewer)
def api_dataset_detail(request, pk: int):
    dataset = Dataset.objects.select_related("created_by").filter(pk=pk).first()
    if dataset is None:
        return api_error(_("No dataset %(id)s.") % {"id": pk}, status=404)
    return JsonResponse(dataset_json(dataset, request, full=True))


@require_GET
@api_view(allowed=is_reviewer)
def api_dataset_download(request, pk: int, fmt: str):
    dataset = Dataset.objects.filter(pk=pk).first()
    if dataset is None:
        return api_error(_("No dataset %(id)s.") % {"id": pk}, status=404)
    try:
        return _file_response(dataset, fmt)
    except Http404:
        return api_error(_("This dataset has no %(format)s file.") % {"format": fmt}, status=404)

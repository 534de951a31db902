"""Datasets: immutable snapshots built from the reviewed documents or uploaded as Excel.

Either way the rows become a snapshot (training.ml.snapshot: canonical content, SHA-256, statistics,
seeded split by document), its files go to storage under `datasets/<task>/<sha256>/`, and a Dataset row
records it. A snapshot whose hash is already known returns the existing Dataset: nothing is stored twice.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from lib.storage import storage_overwrite
from training.dataset_builder import DatasetBuilder, DatasetFilters
from training.interchange.excel import ExcelContent, excel_read
from training.interchange.excel import max_bytes as excel_max_bytes
from training.ml.snapshot import (
    SPLIT_SEED,
    TEST_FRACTION,
    VALIDATION_FRACTION,
    Snapshot,
    SnapshotError,
    finish_statistics,
    snapshot_write,
    temporary_folder,
)
from training.models import Dataset
from training.registry import TASKS, task_spec

logger = logging.getLogger(__name__)


def _save(key: str, handle) -> None:
    # The same content-addressed key: a concurrent twin wrote the same bytes.
    storage_overwrite(storage=default_storage, key=key, content=handle)


def dataset_store(*, snapshot: Snapshot, source: str, name: str, filters: dict, user: AbstractBaseUser | None,
                  seed: int, validation_fraction: float, test_fraction: float, original: bytes | None = None,
                  event_heads: dict[int, int] | None = None) -> tuple[Dataset, bool]:
    """The Dataset of this snapshot: the existing one when the content is known, else a new one whose
    files are in storage before its row exists (a row never points at missing files). `event_heads`: each
    document's newest event behind its rows (DatasetBuilder.heads), recorded with the highest of them."""
    existing = Dataset.objects.filter(sha256=snapshot.sha256).first()
    if existing is not None:
        return existing, False
    location = f"datasets/{snapshot.task}/{snapshot.sha256}"
    with snapshot.jsonl.open("rb") as handle:
        _save(f"{location}/data.jsonl", File(handle))
    parquet = ""
    if snapshot.parquet is not None and snapshot.parquet.exists():  # otherwise made at the first download
        parquet = f"{location}/data.parquet"
        with snapshot.parquet.open("rb") as handle:
            _save(parquet, File(handle))
    original_key = ""
    if original is not None:
        original_key = f"{location}/original.xlsx"
        _save(original_key, ContentFile(original))
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(
                task=snapshot.task, sha256=snapshot.sha256, source=source, name=name[:255],
                labels=snapshot.labels, statistics=snapshot.statistics, split=snapshot.split,
                split_seed=seed, validation_fraction=validation_fraction, test_fraction=test_fraction,
                filters=filters, file=f"{location}/data.jsonl", parquet_file=parquet,
                original_file=original_key, size=snapshot.jsonl.stat().st_size, created_by=user,
                events_through=max((event_heads or {}).values(), default=None),
                event_heads={str(pk): head for pk, head in sorted((event_heads or {}).items())},
            )
    except IntegrityError:  # built at the same moment by someone else: theirs is the same content
        return Dataset.objects.get(sha256=snapshot.sha256), False
    return dataset, True


def finish_treatment_default() -> dict:
    """The DatasetFilters fields of the configured treatment of finish-accepted predictions
    (DOCLOOP_DATASET_FINISH_ACCEPTED, DOCLOOP_DATASET_FINISH_WEIGHT): what builds that name none use."""
    return {"finish_accepted": settings.DOCLOOP_DATASET_FINISH_ACCEPTED,
            "finish_weight": settings.DOCLOOP_DATASET_FINISH_WEIGHT}


def dataset_build(*, task: str, filters: DatasetFilters | None = None, user: AbstractBaseUser | None = None,
                  seed: int = SPLIT_SEED, validation_fraction: float = VALIDATION_FRACTION,
                  test_fraction: float = TEST_FRACTION, name: str = "") -> tuple[Dataset, bool]:
    """Snapshot the latest accepted values of the reviewed documents (DatasetBuilder); (dataset, created)."""
    if task not in TASKS:
        raise ValidationError(_("Unknown task %(task)s.") % {"task": task})
    filters = filters or DatasetFilters()
    builder = DatasetBuilder(task=task, filters=filters)
    with temporary_folder() as tmp:
        try:
            snapshot = snapshot_write(task=task, rows=builder.rows(), folder=Path(tmp), seed=seed,
                                      validation_fraction=validation_fraction, test_fraction=test_fraction)
        except SnapshotError:
            raise ValidationError(_("No reviewed document matches: the dataset would be empty.")) from None
        if builder.finish_accepted and "finish_accepted" not in snapshot.statistics:  # kept: no row says so
            snapshot.statistics["finish_accepted"] = finish_statistics(builder.finish_accepted, None)
        return dataset_store(snapshot=snapshot, source=Dataset.Source.DATABASE,
                             name=name or _("Reviewed documents"), filters=filters.as_dict(), user=user,
                             seed=seed, validation_fraction=validation_fraction, test_fraction=test_fraction,
                             event_heads=builder.heads)


def dataset_local_file(*, dataset: Dataset, kind: str = "jsonl") -> Path:
    """A local path of the dataset's JSONL (or Parquet) file, copied from remote storage once."""
    key = dataset.file if kind == "jsonl" else dataset.parquet_file
    try:
        local = Path(default_storage.path(key))
        if local.exists():
            return local
    except NotImplementedError:
        pass  # remote storage (S3): fetch a copy
    target = Path(settings.DOCLOOP_MODEL_CACHE) / "datasets" / dataset.sha256 / Path(key).name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + ".partial")
        with default_storage.open(key, "rb") as src, partial.open("wb") as out:
            shutil.copyfileobj(src, out)
        partial.rename(target)
    return target


def dataset_parquet(*, dataset: Dataset) -> str:
    """The storage key of the dataset's Parquet copy, written from its JSONL the first time it is asked for
    (a derived file of the same content: the snapshot itself does not change)."""
    if dataset.parquet_file and default_storage.exists(dataset.parquet_file):
        return dataset.parquet_file
    from training.ml.snapshot import jsonl_to_parquet

    key = f"{Path(dataset.file).parent.as_posix()}/data.parquet"
    with temporary_folder() as tmp:
        local = Path(tmp) / "data.parquet"
        jsonl_to_parquet(dataset_local_file(dataset=dataset), local)
        with local.open("rb") as handle:
            _save(key, File(handle))
    Dataset.objects.filter(pk=dataset.pk).update(parquet_file=key)
    dataset.parquet_file = key
    return key


def dataset_verify(*, dataset: Dataset) -> bool:
    """Whether the stored JSONL still holds the content its hash names (rows without their split)."""
    import json

    from training.ml.snapshot import canonical_line, header_line

    digest = hashlib.sha256(header_line(dataset.task))
    with default_storage.open(dataset.file, "rb") as handle:
        for line in handle:
            row = json.loads(line)
            row.pop("split")
            digest.update(canonical_line(row))
    return digest.hexdigest() == dataset.sha256


# Excel ----------------------------------------------------------------------------------------------------

class DatasetRefused(Exception):
    """An upload that cannot become a dataset; `content.problems` says why, row by row."""

    def __init__(self, content):
        self.content = content
        super().__init__("; ".join(content.problem_lines()))


@dataclass
class ExcelCheck:
    """The outcome of validating a workbook: its content (rows, preview, problems) and, when it is valid,
    the snapshot it would become: hash, labels, statistics and the existing dataset of equal content."""

    content: ExcelContent
    sha256: str = ""
    labels: list[str] = field(default_factory=list)
    statistics: dict = field(default_factory=dict)
    existing: Dataset | None = None

    @property
    def ok(self) -> bool:
        return self.content.ok

    @property
    def task_label(self) -> str:
        return str(task_spec(self.content.task).label) if self.content.task else ""


def _read_upload(file) -> tuple[bytes | None, ExcelContent | None]:
    """The bytes of an uploaded file, unless it is over the size limit (then it is not read at all)."""
    name = getattr(file, "name", "") or ""
    size = getattr(file, "size", None)
    if size is not None and size > excel_max_bytes():
        content = ExcelContent(name=name)
        content.problem(_("The file is %(size)s MB, over the limit of %(limit)s MB.")
                        % {"size": f"{size / 1024 / 1024:.1f}", "limit": settings.DOCLOOP_MAX_DATASET_MB})
        return None, content
    return file.read(), None


def dataset_excel_validate(*, file=None, data: bytes | None = None, filename: str = "",
                           task: str | None = None, sheet: str | None = None) -> ExcelCheck:
    """Check a workbook without storing anything (give an uploaded `file`, or `data` and its `filename`)."""
    if file is not None:
        data, refused = _read_upload(file)
        filename = filename or file.name
        if refused is not None:
            return ExcelCheck(content=refused)
    content = excel_read(data=data, name=filename, task=task or None, sheet=sheet or None)
    if not content.ok:
        return ExcelCheck(content=content)
    with temporary_folder() as tmp:
        snapshot = snapshot_write(task=content.task, rows=content.rows, folder=Path(tmp), sort=True,
                                  parquet=False)
    return ExcelCheck(content=content, sha256=snapshot.sha256, labels=snapshot.labels,
                      statistics=snapshot.statistics,
                      existing=Dataset.objects.filter(sha256=snapshot.sha256).first())


def dataset_upload(*, file=None, data: bytes | None = None, filename: str = "", name: str = "",
                   task: str | None = None, sheet: str | None = None, user: AbstractBaseUser | None = None,
                   seed: int = SPLIT_SEED,
                   validation_fraction: float = VALIDATION_FRACTION,
                   test_fraction: float = TEST_FRACTION) -> tuple[Dataset, bool]:
    """Store a valid workbook as a dataset (the original file too); raises DatasetRefused with every problem.
    The same content (whatever the file) returns the existing dataset."""
    if file is not None:
        data, refused = _read_upload(file)
        filename = filename or file.name
        if refused is not None:
            raise DatasetRefused(refused)
    content = excel_read(data=data, name=filename, task=task or None, sheet=sheet or None)
    if not content.ok:
        raise DatasetRefused(content)
    with temporary_folder() as tmp:
        snapshot = snapshot_write(task=content.task, rows=content.rows, folder=Path(tmp), sort=True,
                                  seed=seed, validation_fraction=validation_fraction,
                                  test_fraction=test_fraction)
        filters = {"sheet": content.sheet} if content.sheet else {}
        return dataset_store(snapshot=snapshot, source=Dataset.Source.EXCEL, name=name or filename,
                             filters=filters, user=user, seed=seed, validation_fraction=validation_fraction,
                             test_fraction=test_fraction, original=data)

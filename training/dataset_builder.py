"""Training data from the latest accepted annotations of reviewed documents.

The Django half of building a dataset: it reads rows out of the database, one dict per document, and
hands them to `training.ml.data`, which turns them into a `datasets.Dataset` with its content hash.
"""

from __future__ import annotations

from annotation.selectors import accepted_spans
from documents.selectors import document_words
from training.ml.bio import spans_to_bio
from training.ml.data import BuiltDataset, dataset_from_rows
from training.selectors import reviewed_documents
from training.tasks import task_spec


def token_classification_rows() -> list[dict]:
    rows = []
    for document in reviewed_documents():
        words = document_words(document=document)
        rows.append({
            "document_id": document.id,
            "sha256": document.sha256,
            "words": [w.text for w in words],
            "line_ends": [w.line_end for w in words],
            "tags": spans_to_bio(accepted_spans(document=document), len(words)),
        })
    return rows


def dataset_build(*, task: str) -> BuiltDataset:
    spec = task_spec(task)
    ml = spec.ml()
    rows = spec.rows()
    return dataset_from_rows(task=task, rows=rows, columns=ml.COLUMNS, labels=ml.labels_from_rows(rows),
                             to_document=ml.document_from_row)

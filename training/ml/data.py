"""Training data as a `datasets.Dataset`: canonical content hash and a seeded split by document.

Rows are plain dicts (one per document) that the Django side streams out of the database; the columns
`document_id` and `sha256` (of the PDF) come first, the task's own columns follow.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import datasets


@dataclass
class BuiltDataset:
    task: str
    dataset: datasets.Dataset
    sha256: str  # of the canonical content: equal content, equal hash
    labels: list[str]
    to_document: Callable[[dict], object]

    def documents(self, indices: list[int]) -> list:
        return [self.to_document(self.dataset[i]) for i in indices]

    def sizes(self) -> list[int]:
        return [len(words) for words in self.dataset["words"]]


def canonical_sha256(rows: Iterable[dict]) -> str:
    """SHA-256 of the rows' content, whatever their order and database ids."""
    canonical = json.dumps(
        sorted(({k: v for k, v in row.items() if k != "document_id"} for row in rows),
               key=lambda r: (r.get("sha256", ""), json.dumps(r, sort_keys=True, ensure_ascii=False))),
        ensure_ascii=False, separators=(",", ":"), sort_keys=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def dataset_from_rows(*, task: str, rows: list[dict], columns: list[str], labels: list[str],
                      to_document: Callable[[dict], object]) -> BuiltDataset:
    dataset = datasets.Dataset.from_list(rows) if rows else datasets.Dataset.from_dict({c: [] for c in columns})
    return BuiltDataset(task=task, dataset=dataset, sha256=canonical_sha256(rows), labels=labels,
                        to_document=to_document)


def split_documents(*, sizes: list[int], eval_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Hold out whole documents holding about `eval_fraction` of the words, chosen by seed.

    Documents are taken in a seeded order when they bring the held-out words closer to the target, so one
    long document cannot swallow the training data; at least one document stays on each side.
    """
    count = len(sizes)
    if count < 2:
        raise ValueError(f"Training needs at least 2 reviewed documents; there are {count}.")
    order = list(range(count))
    random.Random(seed).shuffle(order)
    target = eval_fraction * sum(sizes)
    held: list[int] = []
    held_words = 0
    for index in order:
        if len(held) == count - 1:
            break
        if abs(held_words + sizes[index] - target) < abs(held_words - target):
            held.append(index)
            held_words += sizes[index]
    if not held:
        held = [min(order, key=lambda i: sizes[i])]  # every document is long: hold out the shortest
    return sorted(set(order) - set(held)), sorted(held)

"""Training data from the latest accepted annotations of reviewed documents, as a datasets.Dataset."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass

import datasets

from annotation.bio import spans_to_bio
from annotation.selectors import accepted_spans
from documents.selectors import document_words
from training.pipeline import TokenDocument
from training.selectors import reviewed_documents


@dataclass
class BuiltDataset:
    dataset: datasets.Dataset  # columns: document_id, sha256, words, line_ends, tags
    sha256: str  # of the canonical content: equal content, equal hash

    def documents(self, indices: list[int]) -> list[TokenDocument]:
        return [TokenDocument(words=self.dataset[i]["words"], line_ends=self.dataset[i]["line_ends"],
                              tags=self.dataset[i]["tags"]) for i in indices]

    @property
    def entity_types(self) -> list[str]:
        return sorted({tag[2:] for tags in self.dataset["tags"] for tag in tags if tag != "O"})


def dataset_build_token_classification() -> BuiltDataset:
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
    canonical = json.dumps(
        sorted(({k: v for k, v in row.items() if k != "document_id"} for row in rows), key=lambda r: r["sha256"]),
        ensure_ascii=False, separators=(",", ":"), sort_keys=True,
    )
    return BuiltDataset(dataset=datasets.Dataset.from_list(rows) if rows else datasets.Dataset.from_dict(
        {"document_id": [], "sha256": [], "words": [], "line_ends": [], "tags": []}),
        sha256=hashlib.sha256(canonical.encode()).hexdigest())


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

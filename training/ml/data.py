"""Training data from a stored snapshot (training.ml.snapshot), read with `datasets.load_dataset`.

The snapshot's JSONL is read as it is, the way anyone holding the downloaded file would read it, and its
rows are grouped by their `split` column into the task's documents (the task module's document_from_row).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import datasets

from training.ml.snapshot import SPLITS


def snapshot_load(path: str | Path, *, cache_dir: str | Path | None = None) -> datasets.Dataset:
    """The snapshot's rows as a `datasets.Dataset` (one file; the `split` column says where each row goes)."""
    return datasets.load_dataset("json", data_files=str(path), split="train",
                                 cache_dir=str(cache_dir) if cache_dir else None)


def snapshot_documents(path: str | Path, *, to_document: Callable[[dict], object],
                       cache_dir: str | Path | None = None) -> dict[str, list]:
    """The task's documents of each split."""
    documents: dict[str, list] = {name: [] for name in SPLITS}
    for row in snapshot_load(path, cache_dir=cache_dir):
        documents[row["split"]].append(to_document(row))
    return documents


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

"""Training data from a stored snapshot (training.ml.snapshot), read with `datasets.load_dataset`.

The snapshot's JSONL is read as it is, the way anyone holding the downloaded file would read it, and its
rows are grouped by their `split` column into the task's documents (the task module's document_from_row).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import datasets

from training.ml.snapshot import SPLITS

# The type of every column a snapshot row may have (training.ml.snapshot).
COLUMN_TYPES = {
    "document": datasets.Value("string"), "split": datasets.Value("string"), "text": datasets.Value("string"),
    "label": datasets.Value("string"), "tokens": datasets.Sequence(datasets.Value("string")),
    "tags": datasets.Sequence(datasets.Value("string")),
    "line_ends": datasets.Sequence(datasets.Value("bool")),
    "finish_accepted": datasets.Sequence(datasets.Sequence(datasets.Value("int64"))),
    "finish_weight": datasets.Value("float64"),
}
OPTIONAL_COLUMNS = ("finish_accepted", "finish_weight")  # on the rows that need them only


def snapshot_features(path: str | Path) -> datasets.Features | None:
    """The columns of a snapshot whose rows do not all have the same keys (some carry the optional ones),
    else None. `datasets` infers the columns from the file's first block and refuses a later row with more
    keys ("column names don't match"): told the columns, it fills the missing ones with null."""
    with open(path, "rb") as handle:
        first = handle.readline()
        optional = {name for name in OPTIONAL_COLUMNS if b'"%s":' % name.encode() in first}
        for line in handle:
            optional.update(name for name in OPTIONAL_COLUMNS if b'"%s":' % name.encode() in line)
    if not optional or not first.strip():
        return None
    names = {*json.loads(first), *optional}
    return datasets.Features({name: COLUMN_TYPES[name] for name in sorted(names) if name in COLUMN_TYPES})


def snapshot_load(path: str | Path, *, cache_dir: str | Path | None = None) -> datasets.Dataset:
    """The snapshot's rows as a `datasets.Dataset` (one file; the `split` column says where each row goes)."""
    return datasets.load_dataset("json", data_files=str(path), split="train",
                                 features=snapshot_features(path),
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

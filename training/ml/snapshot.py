"""Dataset snapshots as files: canonical content, its SHA-256, statistics and a seeded split by document.

Pure Python (pyarrow only for the optional Parquet copy), so the web process can validate and store an
uploaded Excel dataset without loading the ML stack; the builder that streams rows out of the database
uses the same writer.

A snapshot is a sequence of rows (plain dicts), one example each, carrying a `document` key (rows of one
document share it, and the split never separates them) and the columns of one row shape (`ROW_SHAPES`,
recognised by the columns of the first row; the snapshot knows shapes, not tasks, and the task's name is
only written in its header):

- BIO rows (token classification): `tokens` (list of words), `tags` (BIO, one per word), optionally
  `line_ends`;
- class rows (text classification, or any task with one class per document): `text` and `label`.

Optionally, where a dataset treats the predictions accepted by finishing a review apart (training.
dataset_builder): `finish_weight`, the loss weight (0: left out of the loss) of a text row's class or of the
words of a token row's `finish_accepted` spans ([start, end) word indexes). Rows without them are trained
on as they always were.

**Canonical content.** Each row is serialised as JSON with sorted keys and no spaces; rows are ordered by
(`document`, serialised row); a first line names the task. The SHA-256 of those bytes is the dataset's
hash: equal content, equal hash, whatever the database ids, the row order of a spreadsheet or the split.

**The file** (`data.jsonl`) holds the same rows in the same order, each with its `split` ("train",
"validation" or "test") added: `datasets.load_dataset("json", data_files=...)` reads it as it is.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "validation", "test")

# The split of a new snapshot: shares of the words held out, by whole documents, in a seeded order.
SPLIT_SEED = 42
VALIDATION_FRACTION = 0.1
TEST_FRACTION = 0.1

SENTENCE_ENDS = (".", "!", "?", ";")
_BEGIN = re.compile(r"^B-(.+)$", re.MULTILINE)
_KEY_PREFIX = b'{"document":"'


def canonical_line(row: dict) -> bytes:
    """One row as canonical JSON (sorted keys, no spaces, UTF-8), newline-terminated."""
    return json.dumps(row, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def header_line(task: str) -> bytes:
    return canonical_line({"docloop_dataset": 1, "task": task})


# Row shapes ---------------------------------------------------------------------------------------------

class BioRows:
    """`tokens` and their BIO `tags`: statistics count sentences and entities."""

    columns = ("tokens", "tags")

    def words(self, row: dict) -> int:
        return len(row["tokens"])

    def add(self, stats: Statistics, row: dict) -> None:
        tokens = row["tokens"]
        stats.tokens += len(tokens)
        if tokens:
            # Counted on joined strings: C speed, where a loop over 1.5M words takes seconds.
            joined = "\n".join(tokens) + "\n"
            ends = sum(joined.count(end + "\n") for end in SENTENCE_ENDS)
            stats.sentences += ends + (0 if tokens[-1].endswith(SENTENCE_ENDS) else 1)
            stats.labels.update(_BEGIN.findall("\n".join(row["tags"])))

    def finish_count(self, row: dict) -> int:
        return len(row.get("finish_accepted") or ())

    def split_label(self, row: dict) -> str | None:
        return None

    def describe(self, stats: Statistics, out: dict) -> None:
        out["sentences"] = stats.sentences
        out["entities"] = dict(sorted(stats.labels.items()))


class ClassRows:
    """A `text` and its class (`label`): statistics count the classes, overall and per split."""

    columns = ("text", "label")

    def words(self, row: dict) -> int:
        return len(row["text"].split())

    def add(self, stats: Statistics, row: dict) -> None:
        stats.tokens += self.words(row)
        stats.labels[row["label"]] += 1

    def finish_count(self, row: dict) -> int:
        return 1

    def split_label(self, row: dict) -> str | None:
        return row["label"]

    def describe(self, stats: Statistics, out: dict) -> None:
        out["classes"] = dict(sorted(stats.labels.items()))
        for s in SPLITS:
            out["splits"][s]["classes"] = dict(sorted(stats.split_classes.get(s, Counter()).items()))


ROW_SHAPES = (BioRows(), ClassRows())


def row_shape(row: dict) -> BioRows | ClassRows:
    """The shape whose columns the row has."""
    for shape in ROW_SHAPES:
        if all(column in row for column in shape.columns):
            return shape
    raise SnapshotError("a row has the columns of no row shape (tokens and tags, or text and label)")


# The split ----------------------------------------------------------------------------------------------

def _seeded_key(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def split_assign(*, sizes: list[tuple[str, int]], seed: int = SPLIT_SEED,
                 validation_fraction: float = VALIDATION_FRACTION,
                 test_fraction: float = TEST_FRACTION) -> dict[str, str]:
    """Assign each document (key, words) to train, validation or test.

    Documents are visited in an order fixed by the seed and each document's own key (so adding a document
    moves no other one), and held out while that brings the held-out words closer to their share. With two
    or more documents, train and validation each get at least one; test may stay empty on tiny data.
    """
    order = sorted(sizes, key=lambda item: _seeded_key(seed, item[0]))
    total = sum(size for _key, size in order)
    targets = {"validation": validation_fraction * total, "test": test_fraction * total}
    held = {"validation": 0, "test": 0}
    assigned: dict[str, str] = {}
    for key, size in order:
        assigned[key] = "train"
        for split in ("validation", "test"):
            if abs(held[split] + size - targets[split]) < abs(held[split] - targets[split]):
                assigned[key] = split
                held[split] += size
                break
    counts = Counter(assigned.values())
    if len(order) >= 2 and counts["validation"] == 0 and validation_fraction > 0:
        # Every document is long: hold out the shortest one that can be spared.
        spare = [(size, key) for key, size in order
                 if assigned[key] == "test" or (assigned[key] == "train" and counts["train"] > 1)]
        _size, key = min(spare)
        counts[assigned[key]] -= 1
        assigned[key] = "validation"
        counts["validation"] += 1
    if len(order) >= 2 and counts["train"] == 0:
        _size, key = max((size, key) for key, size in order if assigned[key] != "validation"
                         or counts["validation"] > 1)
        counts[assigned[key]] -= 1
        assigned[key] = "train"
    return assigned


# Statistics ---------------------------------------------------------------------------------------------

@dataclass
class Statistics:
    """Counts over a snapshot's rows, as their shape counts them; `as_dict()` is what the Dataset row
    stores."""

    shape: BioRows | ClassRows
    documents: int = 0
    rows: int = 0
    sentences: int = 0
    tokens: int = 0
    labels: Counter = field(default_factory=Counter)  # entity types (BIO rows) or classes
    split_documents: Counter = field(default_factory=Counter)
    split_rows: Counter = field(default_factory=Counter)
    split_classes: dict[str, Counter] = field(default_factory=dict)
    finish_accepted: int = 0  # entities (or classes) accepted by finishing a review, held apart
    finish_weight: float | None = None
    _last_document: str | None = None

    def add(self, row: dict) -> None:
        self.rows += 1
        if row["document"] != self._last_document:
            self.documents += 1
            self._last_document = row["document"]
        self.shape.add(self, row)
        if row.get("finish_weight") is not None:
            self.finish_accepted += self.shape.finish_count(row)
            self.finish_weight = row["finish_weight"]

    def add_split(self, split: str, *, new_document: bool, label: str | None = None) -> None:
        self.split_rows[split] += 1
        if new_document:
            self.split_documents[split] += 1
        if label is not None:
            self.split_classes.setdefault(split, Counter())[label] += 1

    def label_list(self) -> list[str]:
        return sorted(self.labels)

    def as_dict(self) -> dict:
        stats = {"documents": self.documents, "rows": self.rows, "tokens": self.tokens,
                 "splits": {s: {"documents": self.split_documents[s], "rows": self.split_rows[s]}
                            for s in SPLITS}}
        self.shape.describe(self, stats)
        if self.finish_accepted:
            stats["finish_accepted"] = finish_statistics(self.finish_accepted, self.finish_weight)
        return stats


def finish_statistics(count: int, weight: float | None) -> dict:
    """How many entities (or classes) accepted by finishing a review a dataset holds, and what its rows make
    of them: kept as any other (weight None), excluded from the loss (0) or weighted."""
    treatment = "keep" if weight is None else "exclude" if weight == 0 else "weight"
    return {"count": count, "treatment": treatment, **({"weight": weight} if treatment == "weight" else {})}


# Writing ------------------------------------------------------------------------------------------------

@dataclass
class Snapshot:
    """A written snapshot: its hash, label list, statistics, split and files (in a local folder)."""

    task: str
    sha256: str
    labels: list[str]
    statistics: dict
    split: dict[str, list[str]]  # split name -> document keys, in canonical order
    folder: Path
    jsonl: Path
    parquet: Path | None


class SnapshotError(ValueError):
    pass


def snapshot_write(*, task: str, rows: Iterable[dict], folder: Path, sort: bool = False,
                   seed: int = SPLIT_SEED, validation_fraction: float = VALIDATION_FRACTION,
                   test_fraction: float = TEST_FRACTION, parquet: bool = False) -> Snapshot:
    """Write `rows` as a snapshot into `folder`: data.jsonl (and data.parquet when asked; otherwise
    `jsonl_to_parquet` makes it later, when someone first downloads it).

    `rows` are streamed: memory stays flat in their number, apart from one (key, words) pair per document
    for the split. They must come in canonical order (sorted by document key) unless `sort` is true, which
    sorts them in memory (for spreadsheets, which are bounded by the upload limit).
    """
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(header_line(task))
    sizes: list[tuple[str, int]] = []
    if sort:
        rows = [row for _key, _line, row in sorted(((r["document"], canonical_line(r), r) for r in rows),
                                                 key=lambda t: (t[0], t[1]))]
    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        raise SnapshotError("the dataset has no rows")
    shape = row_shape(first)
    stats = Statistics(shape=shape)
    rows = itertools.chain([first], rows)
    content = folder / "content.jsonl.tmp"
    last_key: str | None = None
    row_labels: list[str] = []  # class rows: each row's class, for the counts per split
    with content.open("wb") as out:
        for row in rows:
            key = row["document"]
            if last_key is not None and key < last_key:
                raise SnapshotError("rows are not in canonical order (by document key)")
            line = canonical_line(row)
            digest.update(line)
            out.write(line)
            stats.add(row)
            label = shape.split_label(row)
            if label is not None:
                row_labels.append(label)
            if key != last_key:
                sizes.append((key, 0))
                last_key = key
            sizes[-1] = (key, sizes[-1][1] + shape.words(row))

    assigned = split_assign(sizes=sizes, seed=seed, validation_fraction=validation_fraction,
                            test_fraction=test_fraction)
    split: dict[str, list[str]] = {s: [] for s in SPLITS}
    for key, _size in sizes:
        split[assigned[key]].append(key)

    # The file: each canonical line with its split appended (the key opens every line: no re-parsing).
    jsonl = folder / "data.jsonl"
    last_key = None
    with content.open("rb") as source, jsonl.open("wb") as out:
        for number, line in enumerate(source):
            key = _line_key(line)
            name = assigned[key]
            stats.add_split(name, new_document=key != last_key,
                            label=row_labels[number] if row_labels else None)
            last_key = key
            out.write(line[:-2] + b',"split":"' + name.encode() + b'"}\n')
    content.unlink()
    parquet_path = folder / "data.parquet" if parquet else None
    if parquet_path is not None:
        jsonl_to_parquet(jsonl, parquet_path)
    return Snapshot(task=task, sha256=digest.hexdigest(), labels=stats.label_list(),
                    statistics=stats.as_dict(), split=split, folder=folder, jsonl=jsonl,
                    parquet=parquet_path)


def _line_key(line: bytes) -> str:
    """The document key of a canonical line, read from its start ("document" sorts first)."""
    if line.startswith(_KEY_PREFIX):
        end = line.find(b'"', len(_KEY_PREFIX))
        key = line[len(_KEY_PREFIX):end]
        if b"\\" not in key:
            return key.decode()
    return json.loads(line)["document"]


PARQUET_WORDS = 20_000


class _ParquetWriter:
    """Rows to Parquet in small row groups built column by column, so memory stays flat (pyarrow's own
    streaming JSON reader held memory in proportion to the file)."""

    TYPES = {"document": "string", "split": "string", "text": "string", "label": "string",
             "tokens": "list<string>", "tags": "list<string>", "line_ends": "list<bool>",
             "finish_accepted": "list<list<int64>>", "finish_weight": "double"}
    OPTIONAL = ("finish_accepted", "finish_weight")  # on some rows only: a column when any row has them

    def __init__(self, path: Path, *, optional: set[str] = frozenset()):
        self.path, self.optional = path, optional
        self.schema = self.writer = self.pool = self.shape = None
        self.columns: dict[str, list] = {}
        self.words = 0

    def _open(self, row: dict) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        types = {"string": pa.string(), "list<string>": pa.list_(pa.string()),
                 "list<bool>": pa.list_(pa.bool_()), "list<list<int64>>": pa.list_(pa.list_(pa.int64())),
                 "double": pa.float64()}
        self.schema = pa.schema([(name, types[self.TYPES[name]]) for name in sorted({*row, *self.optional})
                                 if name in self.TYPES])
        self.shape = row_shape(row)
        self.pool = pa.system_memory_pool()  # hands memory back, where the default pool keeps it
        self.writer = pq.ParquetWriter(self.path, self.schema, memory_pool=self.pool)
        self.columns = {name: [] for name in self.schema.names}

    def add(self, row: dict) -> None:
        if self.writer is None:
            self._open(row)
        for name, values in self.columns.items():
            values.append(row.get(name))
        self.words += self.shape.words(row)
        if self.words >= PARQUET_WORDS:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if not self.columns or not self.columns["document"]:
            return
        arrays = [pa.array(self.columns[field.name], type=field.type, memory_pool=self.pool)
                  for field in self.schema]
        self.writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self.schema))
        self.columns = {name: [] for name in self.schema.names}
        self.words = 0

    def close(self) -> None:
        if self.writer is not None:
            self._flush()
            self.writer.close()


def jsonl_to_parquet(jsonl: Path, parquet: Path) -> None:
    """The Parquet copy of a snapshot's JSONL, streamed in row groups (memory flat in the file's size)."""
    optional = set()
    with jsonl.open("rb") as source:  # the optional columns some row has (a key, never inside a string)
        for line in source:
            optional.update(name for name in _ParquetWriter.OPTIONAL if b'"%s":' % name.encode() in line)
    writer = _ParquetWriter(parquet, optional=optional)
    with jsonl.open("rb") as source:
        for line in source:
            if line.strip():
                writer.add(json.loads(line))
    writer.close()


def snapshot_rows(path: Path) -> Iterator[dict]:
    """The rows of a data.jsonl, with their split, one at a time."""
    with open(path, "rb") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def temporary_folder(prefix: str = "docloop-dataset-") -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix=prefix, dir=os.environ.get("DOCLOOP_TMP") or None)

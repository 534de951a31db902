"""Snapshots: canonical content and hash, the seeded split by document, statistics, a loadable file."""

import hashlib
import json

import datasets
import pyarrow.parquet as pq
import pytest

from training.ml.snapshot import SnapshotError, canonical_line, snapshot_write, split_assign


def _token_rows():
    return [
        {"document": "b", "tokens": ["Maria", "mora", "em", "Recife", "."], "tags": ["B-PESSOA", "O", "O", "B-LOCAL", "O"]},
        {"document": "a", "tokens": ["O", "STF", "decidiu", "."], "tags": ["O", "B-ORG", "O", "O"]},
        {"document": "c", "tokens": ["João", "Silva", "recorreu", "."], "tags": ["B-PESSOA", "I-PESSOA", "O", "O"]},
    ]


def test_equal_content_gives_equal_hash_whatever_the_row_order_or_split(tmp_path):
    rows = _token_rows()
    one = snapshot_write(task="token_classification", rows=rows, folder=tmp_path / "1", sort=True, seed=1)
    two = snapshot_write(task="token_classification", rows=list(reversed(rows)), folder=tmp_path / "2",
                         sort=True, seed=2, validation_fraction=0.3)
    assert one.sha256 == two.sha256 and len(one.sha256) == 64


def test_any_change_of_content_changes_the_hash(tmp_path):
    rows = _token_rows()
    base = snapshot_write(task="token_classification", rows=rows, folder=tmp_path / "1", sort=True).sha256
    rows[0]["tags"][3] = "O"
    assert snapshot_write(task="token_classification", rows=rows, folder=tmp_path / "2", sort=True).sha256 != base


def test_the_hash_is_that_of_the_canonical_lines_anyone_can_recompute(tmp_path):
    snapshot = snapshot_write(task="token_classification", rows=_token_rows(), folder=tmp_path, sort=True)
    digest = hashlib.sha256(canonical_line({"docloop_dataset": 1, "task": "token_classification"}))
    for line in snapshot.jsonl.read_bytes().splitlines():
        row = json.loads(line)
        row.pop("split")
        digest.update(canonical_line(row))
    assert digest.hexdigest() == snapshot.sha256


def test_datasets_load_dataset_reads_the_file_directly_with_its_split(tmp_path):
    snapshot = snapshot_write(task="token_classification", rows=_token_rows(), folder=tmp_path / "s", sort=True,
                              parquet=True)
    loaded = datasets.load_dataset("json", data_files=str(snapshot.jsonl), split="train",
                                   cache_dir=str(tmp_path / "cache"))
    assert loaded.num_rows == 3 and set(loaded.column_names) == {"document", "tokens", "tags", "split"}
    assert loaded[0]["document"] == "a"  # canonical order
    assert {row["split"] for row in loaded} <= {"train", "validation", "test"}
    parquet = datasets.load_dataset("parquet", data_files=str(snapshot.parquet), split="train",
                                    cache_dir=str(tmp_path / "cache"))
    assert parquet.to_list() == loaded.to_list()


def test_statistics_count_documents_sentences_tokens_and_entities(tmp_path):
    snapshot = snapshot_write(task="token_classification", rows=_token_rows(), folder=tmp_path, sort=True)
    stats = snapshot.statistics
    assert (stats["documents"], stats["sentences"], stats["tokens"]) == (3, 3, 13)
    assert stats["entities"] == {"LOCAL": 1, "ORG": 1, "PESSOA": 2}
    assert snapshot.labels == ["LOCAL", "ORG", "PESSOA"]
    assert sum(s["documents"] for s in stats["splits"].values()) == 3


def test_text_classification_counts_classes_per_split(tmp_path):
    rows = [{"document": f"d{i}", "text": f"texto número {i}", "label": "A" if i % 3 else "B"} for i in range(12)]
    snapshot = snapshot_write(task="text_classification", rows=rows, folder=tmp_path, sort=True, parquet=True)
    assert snapshot.statistics["classes"] == {"A": 8, "B": 4} and snapshot.labels == ["A", "B"]
    assert pq.read_table(snapshot.parquet).column_names == ["document", "label", "split", "text"]
    per_split = [snapshot.statistics["splits"][s]["classes"] for s in ("train", "validation", "test")]
    assert sum(c.get("A", 0) for c in per_split) == 8


def test_rows_of_one_document_stay_in_one_split(tmp_path):
    rows = [{"document": f"d{i // 4}", "text": f"frase {i}", "label": "X"} for i in range(40)]
    snapshot = snapshot_write(task="text_classification", rows=rows, folder=tmp_path, sort=True)
    splits_of = {}
    for line in snapshot.jsonl.read_bytes().splitlines():
        row = json.loads(line)
        splits_of.setdefault(row["document"], set()).add(row["split"])
    assert all(len(s) == 1 for s in splits_of.values()) and len(splits_of) == 10


def test_the_split_is_seeded_and_keeps_a_document_where_it_was_when_others_join():
    sizes = [(f"doc{i}", 100 + i) for i in range(50)]
    first = split_assign(sizes=sizes, seed=7)
    assert first == split_assign(sizes=sizes, seed=7) and first != split_assign(sizes=sizes, seed=8)
    counts = {s: sum(1 for v in first.values() if v == s) for s in ("train", "validation", "test")}
    assert counts["validation"] == pytest.approx(5, abs=1) and counts["test"] == pytest.approx(5, abs=1)


def test_two_documents_give_one_to_train_and_one_to_validate():
    assert sorted(split_assign(sizes=[("a", 5000), ("b", 7000)]).values()) == ["train", "validation"]


def test_rows_out_of_canonical_order_are_refused_when_streamed(tmp_path):
    with pytest.raises(SnapshotError, match="canonical order"):
        snapshot_write(task="token_classification", rows=_token_rows(), folder=tmp_path)


def test_an_empty_snapshot_is_refused(tmp_path):
    with pytest.raises(SnapshotError, match="no rows"):
        snapshot_write(task="text_classification", rows=[], folder=tmp_path)

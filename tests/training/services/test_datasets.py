"""Dataset snapshots from the reviewed documents: stored once, immutable, loadable, verifiable."""

import datasets
import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage

from documents.models import Document
from training.dataset_builder import DatasetFilters
from training.models import Dataset
from training.services.datasets import dataset_build, dataset_local_file, dataset_parquet, dataset_verify


def test_a_build_stores_the_files_and_a_row_with_hash_labels_statistics_and_split(import_corpus):
    import_corpus(4)
    dataset, created = dataset_build(task="token_classification")
    assert created and dataset.source == "database" and len(dataset.sha256) == 64
    assert dataset.labels == ["LOCAL", "PESSOA"]
    assert dataset.statistics["documents"] == 4 and dataset.statistics["entities"] == {"LOCAL": 12, "PESSOA": 12}
    assert dataset.statistics["sentences"] == 12 and dataset.statistics["tokens"] == 120
    assert sorted(k for keys in dataset.split.values() for k in keys) == sorted(
        d.sha256 for d in Document.objects.all())
    assert dataset.split["train"] and dataset.split["validation"]
    assert default_storage.exists(dataset.file) and not dataset.parquet_file
    assert dataset_verify(dataset=dataset)


def test_the_parquet_copy_is_written_once_at_the_first_request_and_holds_the_same_rows(import_corpus, tmp_path):
    import_corpus(3)
    dataset, _ = dataset_build(task="token_classification")
    key = dataset_parquet(dataset=dataset)
    dataset.refresh_from_db()
    assert dataset.parquet_file == key and default_storage.exists(key)
    modified = default_storage.get_modified_time(key)
    assert dataset_parquet(dataset=dataset) == key and default_storage.get_modified_time(key) == modified
    parquet = datasets.load_dataset("parquet", data_files=default_storage.path(key), split="train",
                                    cache_dir=str(tmp_path / "cache"))
    jsonl = datasets.load_dataset("json", data_files=default_storage.path(dataset.file), split="train",
                                  cache_dir=str(tmp_path / "cache"))
    assert parquet.to_list() == jsonl.to_list()


def test_building_the_same_content_twice_returns_the_existing_dataset(import_corpus):
    import_corpus(3)
    first, created = dataset_build(task="token_classification")
    again, created_again = dataset_build(task="token_classification", seed=99)
    assert created and not created_again and again.pk == first.pk and Dataset.objects.count() == 1


def test_different_filters_give_a_different_dataset(import_corpus):
    import_corpus(3)
    everything, _ = dataset_build(task="token_classification")
    places, created = dataset_build(task="token_classification", filters=DatasetFilters(labels=("LOCAL",)))
    assert created and places.sha256 != everything.sha256
    assert places.labels == ["LOCAL"] and places.filters == {"labels": ["LOCAL"]}


def test_the_stored_file_loads_with_datasets(import_corpus, tmp_path):
    import_corpus(3)
    dataset, _ = dataset_build(task="token_classification")
    loaded = datasets.load_dataset("json", data_files=str(dataset_local_file(dataset=dataset)), split="train",
                                   cache_dir=str(tmp_path / "cache"))
    assert loaded.num_rows == 3
    assert sorted(loaded["split"]) == sorted(s for s, keys in dataset.split.items() for _ in keys)


def test_nothing_reviewed_is_a_clear_error_and_stores_nothing(db):
    with pytest.raises(ValidationError, match="dataset would be empty"):
        dataset_build(task="token_classification")
    assert not Dataset.objects.exists()

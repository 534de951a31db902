import pytest
from django.core.management import CommandError, call_command

from training.models import Dataset


def test_it_prints_the_id_and_hash_and_the_same_content_gives_the_same_dataset(import_corpus, capsys):
    import_corpus(3)
    call_command("build_dataset", "--task", "token_classification")
    first = capsys.readouterr().out.strip().split("\t")
    dataset = Dataset.objects.get()
    assert first[:3] == [str(dataset.pk), dataset.sha256, "created"]
    call_command("build_dataset", "--task", "token_classification")
    assert capsys.readouterr().out.strip().split("\t")[:3] == [str(dataset.pk), dataset.sha256, "existing"]


def test_filters_reach_the_builder(import_corpus, capsys):
    documents = import_corpus(3)
    ids = f"{documents[0].pk},{documents[1].pk}"
    call_command("build_dataset", "--task", "token_classification", "--labels", "PESSOA", "--documents", ids,
                 "--reviewed-before", "2999-01-01")
    dataset = Dataset.objects.get()
    assert dataset.statistics["documents"] == 2 and dataset.labels == ["PESSOA"]
    assert dataset.filters["document_ids"] == [documents[0].pk, documents[1].pk]
    assert dataset.filters["reviewed_before"].startswith("2999-01-01T00:00:00")


def test_an_empty_selection_fails_without_a_traceback(db):
    with pytest.raises(CommandError, match="would be empty"):
        call_command("build_dataset", "--task", "token_classification")


def test_a_bad_date_is_refused(db):
    with pytest.raises(CommandError, match="not a date"):
        call_command("build_dataset", "--task", "token_classification", "--reviewed-before", "yesterday")

"""The datasets page's "Build dataset" form (issue 19): the filters of manage.py build_dataset, checked by the
API's rules, built by the same service (training.services.datasets.dataset_build)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from training.models import Dataset

URL = "training:dataset-build"


def _form(**fields) -> dict:
    data = {"task": "token_classification", "labels": "", "reviewed_before": "", "document_ids": "", "name": "",
            "seed": "42", "validation_fraction": "0.1", "test_fraction": "0.1", "finish_accepted": "keep",
            "finish_weight": "0.5"}
    data.update(fields)
    return data


def test_admins_see_the_form_with_the_commands_defaults_and_reviewers_do_not(client, admin_user, reviewer, settings):
    settings.DOCLOOP_DATASET_FINISH_ACCEPTED = "exclude"
    client.force_login(admin_user)
    body = client.get(reverse("training:datasets")).content.decode()
    assert 'id="dataset-build-form"' in body and "Build one from the reviewed documents, or upload" in body
    assert 'name="seed" value="42"' in body and 'name="validation_fraction" value="0.1"' in body
    assert '<option value="exclude" selected>' in body
    client.force_login(reviewer)
    assert 'id="dataset-build-form"' not in client.get(reverse("training:datasets")).content.decode()


def test_building_is_for_admins_and_only_by_post(client, reviewer, stranger, admin_user, import_corpus):
    import_corpus(2)
    for user in (reviewer, stranger):
        client.force_login(user)
        assert client.post(reverse(URL), _form()).status_code == 403
    client.logout()
    assert client.post(reverse(URL), _form()).status_code in (302, 403)
    client.force_login(admin_user)
    assert client.get(reverse(URL)).status_code == 405
    assert not Dataset.objects.exists()


def test_building_a_dataset_goes_to_its_page(client, admin_user, import_corpus):
    documents = import_corpus(3)
    client.force_login(admin_user)
    response = client.post(reverse(URL), _form(labels="PESSOA, LOCAL,PESSOA", name="Só pessoas e locais",
                                               document_ids=f"{documents[0].pk},{documents[1].pk}"), follow=True)
    dataset = Dataset.objects.get()
    assert response.redirect_chain == [(reverse("training:dataset", args=[dataset.pk]), 302)]
    assert f"Dataset #{dataset.pk} was built from 2 reviewed documents." in response.content.decode()
    assert (dataset.task, dataset.source, dataset.name, dataset.created_by) == (
        "token_classification", "database", "Só pessoas e locais", admin_user)
    assert dataset.filters == {"labels": ["LOCAL", "PESSOA"], "document_ids": [documents[0].pk, documents[1].pk]}
    assert dataset.statistics["documents"] == 2 and sorted(dataset.labels) == ["LOCAL", "PESSOA"]


def test_the_same_content_gives_the_existing_dataset(client, admin_user, import_corpus):
    import_corpus(2)
    client.force_login(admin_user)
    client.post(reverse(URL), _form())
    again = client.post(reverse(URL), _form(), follow=True)
    dataset = Dataset.objects.get()
    assert f"This content is already dataset #{dataset.pk}; nothing new was stored." in again.content.decode()


def test_with_htmx_a_built_dataset_redirects_the_page(client, admin_user, import_corpus):
    import_corpus(2)
    client.force_login(admin_user)
    response = client.post(reverse(URL), _form(), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("training:dataset", args=[Dataset.objects.get().pk])


def test_the_finish_accepted_option_is_recorded_in_the_filters(client, admin_user, import_corpus):
    import_corpus(2)
    client.force_login(admin_user)
    client.post(reverse(URL), _form(finish_accepted="weight", finish_weight="0.25"))
    assert Dataset.objects.get().filters == {"finish_accepted": "weight", "finish_weight": 0.25}


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"reviewed_before": "ontem"}, "reviewed_before",
     "“reviewed_before” must be a date (YYYY-MM-DD) or a date-time, not “ontem”."),
    ({"reviewed_before": "2024-13-45"}, "reviewed_before", "must be a date (YYYY-MM-DD)"),
    ({"document_ids": "3, x"}, "document_ids", "“document_ids[1]” must be a whole number written in digits 0-9"),
    ({"labels": "PESSOA," + "X" * 101}, "labels", "“labels[1]” is refused"),
    ({"validation_fraction": "1.5"}, "validation_fraction", "A share must be at least 0 and below 1."),
    ({"validation_fraction": "0.6", "test_fraction": "0.4"}, "test_fraction",
     "The validation and test shares must leave some documents to train on."),
    ({"finish_weight": "1"}, "finish_weight", "The weight must be above 0 and below 1."),
    ({"finish_accepted": "ignore"}, "finish_accepted", "Select a valid choice."),
    ({"task": "translation"}, "task", "Select a valid choice."),
    ({"seed": "-1"}, "seed", "Ensure this value is greater than or equal to 0."),
])
def test_bad_filters_are_form_errors_beside_their_field_and_nothing_is_built(client, admin_user, import_corpus,
                                                                             fields, field, message):
    import_corpus(2)
    client.force_login(admin_user)
    response = client.post(reverse(URL), _form(**fields))
    assert response.status_code == 422
    assert message in " ".join(response.context["build_form"].errors[field])
    body = response.content.decode()
    assert 'id="dataset-build-form"' in body and 'class="field invalid"' in body
    assert not Dataset.objects.exists()


def test_filters_that_match_no_reviewed_document_say_so(client, admin_user, import_corpus):
    import_corpus(2, reviewed=False)
    client.force_login(admin_user)
    response = client.post(reverse(URL), _form(), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 422 and "<html" not in body and 'id="dataset-build"' in body
    assert 'id="dataset-build-errors"' in body and "No reviewed document matches: the dataset would be empty." in body
    assert not Dataset.objects.exists()


def test_the_build_form_speaks_portuguese(client, admin_user, portuguese):
    client.force_login(admin_user)
    body = client.get(reverse("training:datasets"), HTTP_ACCEPT_LANGUAGE="pt-br").content.decode()
    assert "Montar um conjunto de dados a partir dos documentos revisados" in body
    assert "Montar conjunto de dados" in body

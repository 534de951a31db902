"""Dataset pages and JSON API: upload with validation (422 with every problem, nothing stored), preview and
statistics, downloads, 401 without a session or token and 403 for reviewers on admin-only actions."""

import io
import json

import pyarrow.parquet as pq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.training.excel_files import bomb, text_rows, token_rows, xlsx
from training.models import Dataset
from training.services.datasets import dataset_build
from training.services.tokens import api_token_create


def _file(data: bytes, name: str = "dados.xlsx") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def _token(user) -> dict:
    return {"HTTP_AUTHORIZATION": f"Token {api_token_create(user=user)[1]}"}


# Pages


def test_validating_on_the_page_shows_preview_and_statistics_and_stores_nothing(client, admin_user):
    client.force_login(admin_user)
    response = client.post(reverse("training:dataset-upload"), {"file": _file(xlsx(text_rows(6))),
                                                                "action": "validate"})
    page = response.content.decode()
    assert response.status_code == 200 and "dataset-preview" in page and "SENTENCA: 3" in page
    assert not Dataset.objects.exists()


def test_uploading_on_the_page_stores_the_dataset_and_shows_it(client, admin_user):
    client.force_login(admin_user)
    response = client.post(reverse("training:dataset-upload"), {"file": _file(xlsx(token_rows(5))),
                                                                "action": "upload"})
    dataset = Dataset.objects.get()
    assert response.status_code == 302 and response.url == reverse("training:dataset", args=[dataset.pk])
    assert dataset.source == "excel" and dataset.task == "token_classification" and dataset.created_by == admin_user
    page = client.get(response.url).content.decode()
    assert dataset.sha256 in page and "PESSOA: 5" in page and "original Excel" in page


def test_a_refused_workbook_is_a_form_error_with_rows_and_stores_nothing(client, admin_user):
    client.force_login(admin_user)
    rows = token_rows(2) + [["a b", "O"]]
    for action in ("validate", "upload"):
        response = client.post(reverse("training:dataset-upload"), {"file": _file(xlsx(rows)), "action": action})
        page = response.content.decode()
        assert response.status_code == 422 and "dataset-problems" in page and "row 4" in page
        assert "2 tokens but 1 tags" in page
    assert not Dataset.objects.exists()


def test_the_htmx_validation_answers_with_the_check_fragment_only(client, admin_user):
    client.force_login(admin_user)
    response = client.post(reverse("training:dataset-upload"), {"file": _file(xlsx(text_rows(4))),
                                                                "action": "validate"}, HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert response.status_code == 200 and page.lstrip().startswith('<div id="dataset-check">')
    assert "<html" not in page


def test_uploading_the_same_content_twice_returns_the_existing_dataset(client, admin_user):
    client.force_login(admin_user)
    client.post(reverse("training:dataset-upload"), {"file": _file(xlsx(text_rows(6))), "action": "upload"})
    reordered = [text_rows(6)[0]] + list(reversed(text_rows(6)[1:]))
    response = client.post(reverse("training:dataset-upload"), {"file": _file(xlsx(reordered), "outro.xlsx"),
                                                                "action": "upload"}, follow=True)
    assert Dataset.objects.count() == 1 and "already dataset" in response.content.decode()


def test_reviewers_see_datasets_but_cannot_upload(client, reviewer):
    client.force_login(reviewer)
    assert client.get(reverse("training:datasets")).status_code == 200
    response = client.post(reverse("training:dataset-upload"), {"file": _file(xlsx(text_rows(4))),
                                                                "action": "upload"})
    assert response.status_code == 403 and not Dataset.objects.exists()


def test_a_stranger_is_sent_to_log_in(client, stranger):
    assert client.get(reverse("training:datasets")).status_code == 302
    client.force_login(stranger)
    assert client.get(reverse("training:datasets")).status_code == 403


def test_downloads_give_the_original_workbook_the_jsonl_and_the_parquet(client, reviewer, admin_user):
    data = xlsx(text_rows(6))
    client.force_login(admin_user)
    client.post(reverse("training:dataset-upload"), {"file": _file(data), "action": "upload"})
    dataset = Dataset.objects.get()
    client.force_login(reviewer)
    original = client.get(reverse("training:dataset-download", args=[dataset.pk, "xlsx"]))
    assert original.status_code == 200 and b"".join(original.streaming_content) == data
    jsonl = b"".join(client.get(reverse("training:dataset-download", args=[dataset.pk, "jsonl"])).streaming_content)
    rows = [json.loads(line) for line in jsonl.splitlines()]
    assert len(rows) == 6 and {r["label"] for r in rows} == {"SENTENCA", "RECURSO"}
    parquet = b"".join(client.get(reverse("training:dataset-download", args=[dataset.pk, "parquet"])).streaming_content)
    assert pq.read_table(io.BytesIO(parquet)).num_rows == 6
    assert client.get(reverse("training:dataset-download", args=[dataset.pk, "csv"])).status_code == 404


# JSON API


def test_the_api_root_lists_datasets_with_statistics_and_hashes(client, admin_user, import_corpus):
    import_corpus(3)
    dataset, _ = dataset_build(task="token_classification")
    response = client.get(reverse("training:api-index"), **_token(admin_user))
    assert response.status_code == 200
    listed = response.json()["datasets"]
    assert [(d["id"], d["sha256"], d["statistics"]["documents"]) for d in listed] == [(dataset.pk, dataset.sha256, 3)]
    assert set(listed[0]["downloads"]) == {"jsonl", "parquet"}
    assert client.get(reverse("training:api-datasets"), **_token(admin_user)).json()["datasets"] == listed


@pytest.mark.parametrize("name", ["api-index", "api-datasets"])
def test_the_api_answers_401_without_a_session_or_token(client, db, name):
    assert client.get(reverse(f"training:{name}")).status_code == 401


def test_validate_answers_422_with_every_problem_and_stores_nothing(client, reviewer):
    rows = text_rows(2) + [[None, None], ["x", 2.5]]
    response = client.post(reverse("training:api-dataset-validate"), {"file": _file(xlsx(rows))}, **_token(reviewer))
    assert response.status_code == 422
    problems = response.json()["problems"]
    assert [(p["row"], p["column"]) for p in problems] == [(4, None), (5, "label")]
    assert not Dataset.objects.exists()


def test_validate_the_url_of_the_issue_without_a_slash(client, reviewer):
    response = client.post("/training/api/datasets/validate", {"file": _file(xlsx(text_rows(4)))}, **_token(reviewer))
    body = response.json()
    assert response.status_code == 200 and body["valid"] and body["task"] == "text_classification"
    assert body["statistics"]["classes"] == {"RECURSO": 2, "SENTENCA": 2} and len(body["preview"]) == 4
    assert body["existing"] is None and not Dataset.objects.exists()


@pytest.mark.parametrize("data,name,expected", [
    (b"PK\x03\x04 not really", "x.xlsx", "not an .xlsx"),
    (b"a,b", "x.csv", "Only .xlsx"),
])
def test_validate_refuses_files_that_are_not_xlsx(client, reviewer, data, name, expected):
    response = client.post(reverse("training:api-dataset-validate"), {"file": _file(data, name)}, **_token(reviewer))
    assert response.status_code == 422 and expected in response.json()["problems"][0]["message"]


def test_validate_refuses_a_zip_bomb_and_a_file_over_the_limit(client, reviewer, settings):
    response = client.post(reverse("training:api-dataset-validate"),
                           {"file": _file(bomb(xlsx(text_rows(2)), megabytes=30))}, **_token(reviewer))
    assert response.status_code == 422 and "zip bomb" in response.json()["problems"][0]["message"]
    settings.DOCLOOP_MAX_DATASET_MB = 0
    response = client.post(reverse("training:api-dataset-validate"), {"file": _file(xlsx(text_rows(2)))},
                           **_token(reviewer))
    assert response.status_code == 422 and "over the limit" in response.json()["problems"][0]["message"]


def test_validate_names_an_unknown_sheet(client, reviewer):
    response = client.post(reverse("training:api-dataset-validate"),
                           {"file": _file(xlsx(text_rows(2))), "sheet": "Plan2"}, **_token(reviewer))
    assert response.status_code == 422 and "Unknown sheet" in response.json()["problems"][0]["message"]


def test_uploading_through_the_api_is_for_admins(client, reviewer, admin_user):
    data = xlsx(text_rows(4))
    assert client.post(reverse("training:api-datasets"), {"file": _file(data)}, **_token(reviewer)).status_code == 403
    first = client.post(reverse("training:api-datasets"), {"file": _file(data)}, **_token(admin_user))
    again = client.post(reverse("training:api-datasets"), {"file": _file(data)}, **_token(admin_user))
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["dataset"]["id"] == again.json()["dataset"]["id"] and not again.json()["created"]
    refused = client.post(reverse("training:api-datasets"), {"file": _file(xlsx([["text"], ["a"]]))},
                          **_token(admin_user))
    assert refused.status_code == 422 and Dataset.objects.count() == 1


def test_building_through_the_api_is_for_admins(client, reviewer, admin_user, import_corpus):
    import_corpus(3)
    url = reverse("training:api-dataset-build")
    body = json.dumps({"task": "token_classification", "labels": ["LOCAL"]})
    assert client.post(url, body, content_type="application/json", **_token(reviewer)).status_code == 403
    response = client.post(url, body, content_type="application/json", **_token(admin_user))
    assert response.status_code == 201 and response.json()["dataset"]["labels"] == ["LOCAL"]
    bad = client.post(url, json.dumps({"task": "token_classification", "reviewed_before": "ontem"}),
                      content_type="application/json", **_token(admin_user))
    assert bad.status_code == 422 and "reviewed_before" in bad.json()["error"]


def test_the_api_downloads_with_a_token(client, reviewer, import_corpus):
    import_corpus(2)
    dataset, _ = dataset_build(task="token_classification")
    response = client.get(reverse("training:api-dataset-download", args=[dataset.pk, "jsonl"]), **_token(reviewer))
    assert response.status_code == 200 and len(b"".join(response.streaming_content).splitlines()) == 2
    assert client.get(reverse("training:api-dataset-download", args=[dataset.pk, "jsonl"])).status_code == 401
    missing = client.get(reverse("training:api-dataset-download", args=[dataset.pk, "xlsx"]), **_token(reviewer))
    assert missing.status_code == 404
    detail = client.get(reverse("training:api-dataset", args=[dataset.pk]), **_token(reviewer)).json()
    assert detail["split"] == dataset.split

"""/labelstudio/: Label Studio's ML backend protocol (training.labelstudio).

The protocol tests run through the test client. The interoperability test drives docloop's live server
with Label Studio itself (label-studio from PyPI, in a virtualenv of its own under var/, since it pins its
own Django): its ML backend connector (`ml.api_connector.MLApi`, with Basic auth as its ML backend
settings send it) calls /health, /setup, /predict and /webhook, the predictions are checked the way Label
Studio's MLBackend checks a backend's answer and then by its LabelInterface.validate_prediction (what its
prediction serializer runs before storing one).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse

from annotation.models import Annotation
from documents.models import Document
from tests.conftest import virtualenv_with
from training import labelstudio
from training.models import LabelStudioImport, ModelVersion
from training.services.tokens import api_token_create

CONFIG = ('<View><Labels name="label" toName="text"><Label value="PESSOA"/><Label value="LOCAL"/></Labels>'
          '<Text name="text" value="$text"/></View>')
TEXT = "O réu Maria Souza mora em Recife desde 2011.\nA ré Ana Lima mora em Manaus desde 2012."


def _token(user) -> str:
    return api_token_create(user=user)[1]


def _auth(token: str, user=None, scheme: str = "Token") -> dict:
    if scheme == "Basic":
        return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{user.username}:{token}".encode()).decode()}
    return {"HTTP_AUTHORIZATION": f"Token {token}"}


def _post(client, name: str, body, **auth):
    return client.post(reverse(f"labelstudio:{name}"), json.dumps(body), content_type="application/json", **auth)


def _annotation_payload(action: str, regions: list[tuple[int, int, str]], *, text: str = TEXT, task: int = 7) -> dict:
    return {"action": action, "project": {"id": 1, "label_config": CONFIG},
            "task": {"id": task, "data": {"text": text}},
            "annotation": {"id": 3, "task": task, "was_cancelled": False, "result": [
                {"id": f"r{i}", "from_name": "label", "to_name": "text", "type": "labels", "origin": "manual",
                 "value": {"start": s, "end": e, "text": text[s:e], "labels": [label]}}
                for i, (s, e, label) in enumerate(regions)]}}


def _span(text: str, phrase: str) -> tuple[int, int]:
    start = text.index(phrase)
    return start, start + len(phrase)


# Authentication -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,method", [("health", "get"), ("setup", "post"), ("predict", "post"),
                                         ("webhook", "post")])
def test_a_bad_or_missing_token_gets_401(client, reviewer, name, method):
    url = reverse(f"labelstudio:{name}")
    for headers in ({}, _auth("not-a-token"), _auth("not-a-token", reviewer, "Basic")):
        response = getattr(client, method)(url, **headers)
        assert response.status_code == 401, (name, headers)
        assert response.json()["error"]


def test_the_token_works_as_header_and_as_basic_auth_and_a_user_without_a_role_gets_403(client, reviewer, stranger):
    token = _token(reviewer)
    for headers in (_auth(token), _auth(token, reviewer, "Basic")):
        response = client.get(reverse("labelstudio:health"), **headers)
        assert response.status_code == 200 and response.json()["status"] == "UP"
    assert client.get(reverse("labelstudio:health"), **_auth(_token(stranger))).status_code == 403


# /setup and /predict without a model; bad input ---------------------------------------------------------------

def test_setup_names_no_model_and_predict_says_there_is_none_yet(client, reviewer):
    auth = _auth(_token(reviewer))
    response = _post(client, "setup", {"project": "1.1", "schema": CONFIG}, **auth)
    assert response.status_code == 200 and response.json() == {"model_version": "docloop-none"}
    response = _post(client, "predict", {"tasks": [{"id": 1, "data": {"text": TEXT}}], "label_config": CONFIG}, **auth)
    assert response.status_code == 503 and "no active token classification model" in response.json()["error"]


@pytest.mark.parametrize("body,message", [
    ({"tasks": [{"id": 1, "data": {"text": "x"}}], "label_config": "<View>"}, "not valid XML"),
    ({"tasks": [{"id": 1, "data": {"text": "x"}}], "label_config": "<View><Text name='t' value='$t'/></View>"},
     "no <Labels> control"),
    ({"tasks": [{"id": 1, "data": {"body": "x"}}], "label_config": CONFIG}, "no text in data.text"),
    ({"tasks": [], "label_config": CONFIG}, "list of tasks"),
])
def test_a_bad_predict_request_gets_400_with_the_reason(client, reviewer, body, message):
    response = _post(client, "predict", body, **_auth(_token(reviewer)))
    assert response.status_code == 400 and message in response.json()["error"]
    assert client.post(reverse("labelstudio:predict"), "{nope", content_type="application/json",
                       **_auth(_token(reviewer))).status_code == 400


# /webhook ------------------------------------------------------------------------------------------------------

def _deliver(client, body, capture, **auth):
    """Post a webhook as Label Studio does; its import is queued once the request's transaction commits."""
    with capture(execute=True):
        return _post(client, "webhook", body, **auth)


def test_an_annotation_creates_a_reviewed_document_and_its_update_replaces_the_entities(
        client, reviewer, media_root, run_worker, django_capture_on_commit_callbacks):
    auth = _auth(_token(reviewer), reviewer, "Basic")
    maria, recife = _span(TEXT, "Maria Souza"), _span(TEXT, "Recife")
    response = _deliver(client, _annotation_payload("ANNOTATION_CREATED", [(*maria, "PESSOA"), (*recife, "LOCAL")]),
                        django_capture_on_commit_callbacks, **auth)
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "queued" and response.json()["entities"] == 2
    assert not Document.objects.exists()  # the worker renders and extracts it, not the request
    assert run_worker() == 1
    job = LabelStudioImport.objects.get(pk=response.json()["import"])
    assert job.status == "imported" and job.document_created and job.entities == 2, job.error
    document = job.document
    assert document.status == "ready" and document.is_reviewed and document.reviewed_by == reviewer
    accepted = {(a.text, a.label.name) for a in document.annotations.filter(status=Annotation.Status.ACCEPTED)}
    assert accepted == {("Maria Souza", "PESSOA"), ("Recife", "LOCAL")}
    assert document.word_count == len(labelstudio.text_words(TEXT)[0])

    # The reviewer relabels in Label Studio: an update of the same task, and a region that ends mid-word.
    ana = _span(TEXT, "Ana Lim")
    response = _deliver(client, _annotation_payload(
        "ANNOTATION_UPDATED", [(*maria, "PESSOA"), (*ana, "PESSOA"), (*_span(TEXT, "Manaus"), "LOCAL")]),
        django_capture_on_commit_callbacks, **auth)
    assert response.status_code == 202
    assert run_worker() == 1
    job = LabelStudioImport.objects.get(pk=response.json()["import"])
    assert job.status == "imported" and job.document == document and not job.document_created
    assert Document.objects.count() == 1
    accepted = {(a.text, a.label.name) for a in document.annotations.filter(status=Annotation.Status.ACCEPTED)}
    assert accepted == {("Maria Souza", "PESSOA"), ("Ana Lima", "PESSOA"), ("Manaus", "LOCAL")}
    assert document.annotations.filter(text="Recife").get().status == Annotation.Status.DELETED


def test_a_redelivered_annotation_queues_nothing_more(client, reviewer, media_root, run_worker,
                                                       django_capture_on_commit_callbacks):
    auth = _auth(_token(reviewer))
    payload = _annotation_payload("ANNOTATION_CREATED", [(*_span(TEXT, "Maria Souza"), "PESSOA")])
    first = _deliver(client, payload, django_capture_on_commit_callbacks, **auth)
    again = _deliver(client, payload, django_capture_on_commit_callbacks, **auth)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["import"] == first.json()["import"] and again.json()["queued"] is False
    assert run_worker() == 1
    after = _deliver(client, payload, django_capture_on_commit_callbacks, **auth)
    assert after.status_code == 200 and after.json()["status"] == "imported" and after.json()["document"]
    assert LabelStudioImport.objects.count() == 1 and Document.objects.count() == 1


def test_an_import_the_worker_cannot_store_fails_with_the_reason_and_leaves_nothing(
        client, reviewer, media_root, run_worker, django_capture_on_commit_callbacks, settings):
    settings.DOCLOOP_MAX_PAGE_WORDS = 3  # the rendered PDF's pages are refused by extraction
    response = _deliver(client, _annotation_payload("ANNOTATION_CREATED", [(*_span(TEXT, "Recife"), "LOCAL")]),
                        django_capture_on_commit_callbacks, **_auth(_token(reviewer)))
    assert response.status_code == 202
    run_worker()
    job = LabelStudioImport.objects.get()
    assert job.status == "failed" and "could not be stored as a document" in job.error and job.finished_at
    assert not Document.objects.exists()
    assert not [p for p in media_root.rglob("*.pdf")]


def test_a_long_task_is_answered_at_once_and_imported_by_the_worker(
        client, reviewer, media_root, run_worker, django_capture_on_commit_callbacks):
    sentence = "O réu Maria Souza mora em Recife desde 2011 e recorreu ao tribunal de justiça."
    text = "\n".join(f"{sentence} ({i})" for i in range(3000))  # 54,000 words, 250 pages
    regions = [(*_span(text, "Maria Souza"), "PESSOA")]
    regions += [(m.start(), m.end(), "LOCAL") for m in re.finditer("Recife", text)][1:500]
    started = time.monotonic()
    response = _deliver(client, _annotation_payload("ANNOTATION_CREATED", regions, text=text),
                        django_capture_on_commit_callbacks, **_auth(_token(reviewer)))
    answered = time.monotonic() - started
    assert response.status_code == 202, response.content
    assert response.json()["words"] == len(labelstudio.text_words(text)[0]) and response.json()["entities"] == 500
    # The request rendered and extracted nothing: no document, no page, no file yet.
    assert not Document.objects.exists() and not list(media_root.rglob("*.pdf"))
    assert answered < 5, f"the webhook took {answered:.1f} s"
    assert run_worker() == 1
    job = LabelStudioImport.objects.get()
    assert job.status == "imported", job.error
    assert job.document.word_count == job.words and job.entities == 500


def test_other_actions_are_acknowledged_and_bad_annotations_refused(client, reviewer, media_root):
    auth = _auth(_token(reviewer))
    response = _post(client, "webhook", {"action": "PROJECT_UPDATED", "project": {"id": 1}}, **auth)
    assert response.status_code == 200 and response.json() == {"status": "ignored"}
    bad = _annotation_payload("ANNOTATION_CREATED", [(0, 999, "PESSOA")])
    response = _post(client, "webhook", bad, **auth)
    assert response.status_code == 400 and "outside the text" in response.json()["error"]
    no_label = _annotation_payload("ANNOTATION_CREATED", [(0, 5, "PESSOA")])
    no_label["annotation"]["result"][0]["value"]["labels"] = []
    assert _post(client, "webhook", no_label, **auth).status_code == 400
    assert not Document.objects.exists() and not LabelStudioImport.objects.exists()


def test_text_words_split_punctuation_and_keep_numbers_whole():
    words, offsets = labelstudio.text_words("Lei nº 8.666, de 12/03/1993 (art. 5º).")
    assert words == ["Lei", "nº", "8.666", ",", "de", "12/03/1993", "(", "art", ".", "5º", ")", "."]
    assert [("Lei nº 8.666, de 12/03/1993 (art. 5º)."[s:e]) for s, e in offsets] == words


# A trained model, and Label Studio itself ---------------------------------------------------------------------

LS_VENV = Path(settings.VAR_DIR) / "label-studio-venv"
# label-studio 1.23.2 does not pin sentry-sdk, and sentry-sdk 3.0 (December 2026) refuses the options it passes
# at start-up ("Unknown option 'send_default_pii'").
LS_PACKAGES = ("label-studio==1.23.2", "sentry-sdk<3")


@pytest.fixture(scope="session")
def label_studio_python():
    """Label Studio lives in its own virtualenv under var/ (installed once; it pins a Django of its own)."""
    return virtualenv_with(LS_VENV, *LS_PACKAGES, module="label_studio", timeout=1500)


LABEL_STUDIO = r"""
import json, os, sys, tempfile, types, datetime
import label_studio
sys.path.insert(0, os.path.dirname(label_studio.__file__))
os.environ.update(DJANGO_SETTINGS_MODULE="core.settings.label_studio", ML_BLOCK_LOCAL_IP="false",
                  LABEL_STUDIO_BASE_DATA_DIR=tempfile.mkdtemp())
import django
django.setup()
from ml.api_connector import MLApi
from label_studio_sdk.label_interface import LabelInterface

url, user, token, config, tasks, webhook = sys.argv[1:7]
tasks, webhook = json.loads(tasks), json.loads(webhook)
project = types.SimpleNamespace(id=1, created_at=datetime.datetime(2026, 1, 1), label_config=config,
                                task_data_login=None, task_data_password=None,
                                created_by=types.SimpleNamespace(auth_token=types.SimpleNamespace(key="ls-token")))
api = MLApi(url=url, basic_auth_user=user, basic_auth_pass=token)
out = {"health": api.health().response, "setup": api.setup(project).response}
result = api.make_predictions(tasks, project)
out["predict_error"] = result.error_message if result.is_error else None
responses = result.response.get("results") if isinstance(result.response, dict) else None
# MLBackend._get_predictions_from_ml_backend's checks, then the serializer's validation
assert isinstance(responses, list) and len(responses) == len(tasks), result.response
interface = LabelInterface(config)
out["validation_errors"] = [interface.validate_prediction(r, return_errors=True) for r in responses]
out["predictions"] = responses
out["webhook"] = api._request("webhook", webhook).response
wrong = MLApi(url=url, basic_auth_user=user, basic_auth_pass="wrong-token").health()
out["wrong_token"] = [wrong.is_error, wrong.status_code]
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_label_studio_gets_pre_annotations_from_the_active_model_and_sends_annotations_back(
        live_server, label_studio_python, reviewer, import_corpus, media_root, run_worker):
    import_corpus(8, sentences=4)
    call_command("train", "--task", "token_classification", "--sync", "--epochs", "4", "--batch-size", "8",
                 "--learning-rate", "3e-4", "--max-length", "32", "--seed", "5", stdout=io.StringIO())
    version = ModelVersion.objects.get(is_active=True)
    tasks = [{"id": 1, "data": {"text": TEXT}, "project": 1},
             {"id": 2, "data": {"text": "O réu Pedro Santos mora em Curitiba desde 2009."}, "project": 1}]
    maria = _span(TEXT, "Maria Souza")
    webhook = _annotation_payload("ANNOTATION_CREATED", [(*maria, "PESSOA")], task=1)
    before = set(Document.objects.values_list("pk", flat=True))
    result = subprocess.run(
        [str(label_studio_python), "-c", LABEL_STUDIO, f"{live_server.url}/labelstudio", reviewer.username,
         _token(reviewer), CONFIG, json.dumps(tasks), json.dumps(webhook)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])

    name = f"docloop-token_classification-v{version.number}"
    assert out["health"]["status"] == "UP" and out["setup"] == {"model_version": name}
    assert out["predict_error"] is None and out["validation_errors"] == [[], []]
    found = set()
    for task, prediction in zip(tasks, out["predictions"], strict=True):
        assert prediction["model_version"] == name
        text = task["data"]["text"]
        for region in prediction["result"]:
            value = region["value"]
            assert text[value["start"]:value["end"]] == value["text"]
            assert value["labels"][0] in {"PESSOA", "LOCAL"} and 0 < region["score"] <= 1
            found.add((value["text"], value["labels"][0]))
        assert prediction["score"] == min((r["score"] for r in prediction["result"]), default=None)
    # The trained pattern is found, and the regions are exactly the active model's own spans on the words.
    assert {("Maria Souza", "PESSOA"), ("Pedro Santos", "PESSOA")} <= found
    from training.predictor_cache import predictor_for

    for task, prediction in zip(tasks, out["predictions"], strict=True):
        text = task["data"]["text"]
        words, offsets = labelstudio.text_words(text)
        ends = [i + 1 == len(words) or "\n" in text[offsets[i][1]:offsets[i + 1][0]] for i in range(len(words))]
        own = predictor_for(version).predict(words, ends).spans
        assert [(r["value"]["start"], r["value"]["end"], r["value"]["labels"][0]) for r in prediction["result"]] == [
            (offsets[s][0], offsets[e - 1][1], label) for s, e, label, _score in own]

    assert out["webhook"]["status"] == "queued" and out["webhook"]["queued"] is True
    assert run_worker() == 1  # the worker imports what the webhook queued
    document = Document.objects.exclude(pk__in=before).get()
    assert document.is_reviewed
    assert list(document.annotations.values_list("text", "label__name", "status")) == [
        ("Maria Souza", "PESSOA", "accepted")]
    assert out["wrong_token"] == [True, 401]

"""Export and import of annotations: round trips, readers of the exported files, refused bad input."""

from __future__ import annotations

import json
import os
import subprocess
import warnings
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from annotation import services
from annotation.models import Annotation, AnnotationEvent
from documents.models import Document
from tests.conftest import virtualenv_with
from training.interchange import annotations as interchange
from training.interchange.labelstudio import labelstudio_config

SECOND = [["Outro", "acórdão", "do", "Tribunal", "de", "Justiça", "de", "Minas", "Gerais", "."],
          ["Relator", ":", "Maria", "Souza", "."]]


@pytest.fixture
def corpus(ready_document, make_pdf, entity_types, reviewer):
    """Two documents: one reviewed with accepted, rejected and predicted-then-accepted entities; one with
    a prediction nobody decided on and a human entity."""
    from documents.services import document_create, document_extract, document_mark_reviewed

    services.annotations_predict(document=ready_document, model_version=None, spans=[
        services.Span(1, 3, "ORGANIZACAO", 0.875), services.Span(7, 9, "LOCAL", 0.25)])
    services.annotation_accept(annotation=Annotation.objects.get(start=1), user=reviewer, revision=1)
    services.annotation_reject(annotation=Annotation.objects.get(start=7), user=reviewer, revision=1)
    services.annotation_create(document=ready_document, start=18, end=21, label=entity_types["PESSOA"],
                               user=reviewer)
    document_mark_reviewed(document=ready_document, user=reviewer)
    other = document_extract(document=document_create(data=make_pdf(SECOND), name="outro acórdão.pdf")[0])
    services.annotations_predict(document=other, model_version=None, spans=[services.Span(3, 9, "ORGANIZACAO", 0.5)])
    services.annotation_create(document=other, start=12, end=14, label=entity_types["PESSOA"], user=reviewer)
    return ready_document, other


def _empty_database():
    Document.objects.all().delete()
    assert not Annotation.objects.exists() and not AnnotationEvent.objects.exists()


@pytest.mark.parametrize("format", interchange.FORMATS)
def test_export_import_into_an_empty_database_and_export_again_gives_the_same_file(corpus, format, reviewer):
    first = interchange.annotations_export(format=format)
    _empty_database()
    result = interchange.annotations_import_file(format=format, text=first, file=f"corpus.{format}",
                                                 user=reviewer)
    assert result.documents == 2 and result.skipped == []
    assert interchange.annotations_export(format=format) == first


def test_the_jsonl_export_carries_text_tokens_spans_status_and_doc_class(corpus):
    lines = interchange.annotations_export(format="jsonl").splitlines()
    first = json.loads(lines[0])
    assert set(first) == {"name", "text", "tokens", "spans", "doc_class", "reviewed"}
    assert first["text"].startswith("O Ministério Público") and first["reviewed"] is True
    assert first["spans"][0] == {"start": 1, "end": 3, "label": "ORGANIZACAO", "status": "accepted",
                                 "source": "model", "score": 0.875}
    assert [s["status"] for s in first["spans"]] == ["accepted", "rejected", "accepted"]


def test_seqeval_reads_the_conll_export(corpus):
    from seqeval.metrics import classification_report, f1_score
    from seqeval.scheme import IOB2

    text = interchange.annotations_export(format="conll")
    assert text.startswith("-DOCSTART- O\n\n")
    sentences, current = [], []
    for line in text.splitlines():
        if line.startswith("-DOCSTART-"):
            continue
        if not line:
            if current:
                sentences.append(current)
            current = []
            continue
        token, tag = line.split(" ")
        current.append(tag)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # seqeval warns about tags it cannot read
        report = classification_report(sentences, sentences, mode="strict", scheme=IOB2, output_dict=True)
    assert f1_score(sentences, sentences, mode="strict", scheme=IOB2) == 1.0
    # Accepted entities only: ORGANIZACAO and PESSOA of the first document, PESSOA of the second.
    assert {k: v["support"] for k, v in report.items() if k.isupper()} == {"ORGANIZACAO": 1, "PESSOA": 2}


def _labelstudio_schema_errors(tasks) -> list[str]:
    """Label Studio's documented import format for a text NER project: a list of tasks, each with `data`
    holding the text, `annotations` and `predictions` whose `result` items name the control (`from_name`),
    the object (`to_name`), `type: labels` and a `value` with character `start`/`end`, the `text` they cover
    and one label."""
    errors = []
    for t, task in enumerate(tasks):
        text = task["data"]["text"]
        if not isinstance(task.get("id"), int):
            errors.append(f"task {t}: id")
        for kind in ("annotations", "predictions"):
            for item in task.get(kind, []):
                for r in item["result"]:
                    value = r["value"]
                    if (r["from_name"], r["to_name"], r["type"]) != ("label", "text", "labels"):
                        errors.append(f"task {t}: names")
                    if not (0 <= value["start"] < value["end"] <= len(text)):
                        errors.append(f"task {t}: offsets")
                    if text[value["start"]:value["end"]] != value["text"] or len(value["labels"]) != 1:
                        errors.append(f"task {t}: text or labels")
                    if kind == "predictions" and not isinstance(r.get("score"), float):
                        errors.append(f"task {t}: score")
    return errors


def test_the_label_studio_export_follows_its_documented_task_format(corpus):
    tasks = json.loads(interchange.annotations_export(format="labelstudio"))
    assert _labelstudio_schema_errors(tasks) == []
    assert [len(t["annotations"][0]["result"]) for t in tasks] == [2, 1]
    assert tasks[1]["predictions"][0]["result"][0]["value"]["text"] == "Tribunal de Justiça de Minas Gerais"


LS_VENV = Path(settings.VAR_DIR) / "label-studio-sdk-venv"
LS_SDK = "label-studio-sdk==2.1.2"


@pytest.fixture(scope="session")
def label_studio_python():
    """label-studio-sdk lives in its own virtualenv under var/ (installed once, never in the project's):
    it pins libraries of its own that the project must not inherit."""
    return virtualenv_with(LS_VENV, LS_SDK, module="label_studio_sdk", timeout=900)


CONVERT = """
import json, sys, tempfile, os
from label_studio_sdk.converter import Converter
config, source, out = sys.argv[1], sys.argv[2], sys.argv[3]
Converter(config=config, project_dir=tempfile.mkdtemp(), download_resources=False).convert(
    source, out, "CONLL2003", is_dir=False)
print(json.dumps(sorted(os.listdir(out))))
"""


@pytest.mark.slow
def test_label_studio_sdk_converts_the_label_studio_export(corpus, label_studio_python, tmp_path):
    export = tmp_path / "tasks.json"
    export.write_text(interchange.annotations_export(format="labelstudio"), encoding="utf-8")
    config = labelstudio_config(["ORGANIZACAO", "PESSOA", "LOCAL"])
    out = tmp_path / "converted"
    result = subprocess.run([str(label_studio_python), "-c", CONVERT, config, str(export), str(out)],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 0, result.stderr[-2000:]
    (converted,) = [p for p in out.iterdir() if p.is_file()]
    text = converted.read_text(encoding="utf-8")
    assert "Ministério -X- _ B-ORGANIZACAO" in text and "Silva -X- _ I-PESSOA" in text


# Bad input: a precise message and nothing of the file imported --------------------------------------------------

def _nothing_imported(media_root):
    assert not Document.objects.exists() and not Annotation.objects.exists()
    assert not media_root.exists() or not any(p.is_file() for p in media_root.rglob("*.pdf"))


GOOD = "-DOCSTART- O\n\nO O\nTribunal B-ORGANIZACAO\nde I-ORGANIZACAO\nJustiça I-ORGANIZACAO\n. O\n\n"


@pytest.mark.parametrize("text,line,field,message", [
    (GOOD + "-DOCSTART- O\n\nJoão B-PESSOA\nSilva\n", 12, "tag", "two columns"),
    (GOOD + "-DOCSTART- O\n\nJoão X-PESSOA\n", 11, "tag", "not BIO"),
    (GOOD + "-DOCSTART- O\n\nJoão B-PARTIDO\n", 9, "spans[0].label", "unknown label 'PARTIDO'"),
])
def test_malformed_conll_is_refused_with_file_line_and_field(db, entity_types, media_root, text, line, field, message):
    with pytest.raises(interchange.InteropError) as caught:
        interchange.annotations_import_file(format="conll", text=text, file="bad.conll")
    assert (caught.value.file, caught.value.line, caught.value.field) == ("bad.conll", line, field)
    assert message in str(caught.value)
    _nothing_imported(media_root)


def test_label_studio_offsets_outside_the_text_are_refused(db, entity_types, media_root):
    tasks = [{"data": {"text": "O Tribunal decidiu ."}, "annotations": []},
             {"data": {"text": "Maria Souza"}, "annotations": [{"result": [
                 {"from_name": "label", "to_name": "text", "type": "labels",
                  "value": {"start": 6, "end": 40, "labels": ["PESSOA"]}}]}]}]
    with pytest.raises(interchange.InteropError) as caught:
        interchange.annotations_import_file(format="labelstudio", text=json.dumps(tasks), file="tasks.json")
    assert (caught.value.line, caught.value.field) == (2, "annotations[0].result[0].value.start")
    assert "outside the text (11 characters)" in str(caught.value)
    _nothing_imported(media_root)


def test_a_bad_jsonl_line_is_refused_and_nothing_of_the_file_is_imported(db, entity_types, media_root):
    good = json.dumps({"name": "a.pdf", "tokens": ["Maria", "Souza", "."],
                       "spans": [{"start": 0, "end": 2, "label": "PESSOA"}]})
    bad = json.dumps({"name": "b.pdf", "tokens": ["Outro", "."], "spans": [{"start": 0, "end": "2", "label": "X"}]})
    with pytest.raises(interchange.InteropError) as caught:
        interchange.annotations_import_file(format="jsonl", text=good + "\n" + bad + "\n", file="docs.jsonl")
    assert (caught.value.line, caught.value.field) == (2, "spans[0].end")
    _nothing_imported(media_root)


def test_a_failure_after_some_documents_were_written_rolls_all_of_them_back(db, entity_types, media_root):
    good = json.dumps({"name": "a.pdf", "tokens": ["Maria", "Souza", "."], "spans": []})
    same = json.dumps({"name": "b.pdf", "tokens": ["Maria", "Souza", "."], "spans": []})
    with pytest.raises(interchange.InteropError, match="same tokens as the document at line 1"):
        interchange.annotations_import_file(format="jsonl", text=f"{good}\n{same}\n", file="docs.jsonl")
    overlapping = json.dumps({"name": "c.pdf", "tokens": ["Maria", "da", "Souza"], "spans": [
        {"start": 0, "end": 2, "label": "PESSOA"}, {"start": 1, "end": 3, "label": "PESSOA"}]})
    with pytest.raises(interchange.InteropError, match="overlaps"):
        interchange.annotations_import_file(format="jsonl", text=f"{good}\n{overlapping}\n",
                                            file="docs.jsonl")
    _nothing_imported(media_root)


def test_the_commands_round_trip_through_files(corpus, tmp_path, reviewer):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    call_command("export_annotations", "--format", "jsonl", "--reviewed", "--out", str(first))
    assert len(first.read_text().splitlines()) == 1
    _empty_database()
    call_command("import_annotations", "--format", "jsonl", str(first), "--user", reviewer.username)
    call_command("export_annotations", "--format", "jsonl", "--out", str(second))
    assert second.read_text() == first.read_text()
    with pytest.raises(CommandError, match="no ready document with id 999"):
        call_command("export_annotations", "--format", "conll", "--documents", "999", "--out", str(second))


def test_import_annotations_reports_the_line_and_imports_nothing(db, entity_types, tmp_path, media_root):
    bad = tmp_path / "bad.conll"
    bad.write_text(GOOD + "-DOCSTART- O\n\nJoão B-PESSOA extra\n", encoding="utf-8")
    with pytest.raises(CommandError, match=r"bad.conll:11 \[tag\].*nothing imported"):
        call_command("import_annotations", "--format", "conll", str(bad))
    _nothing_imported(media_root)


# The review CSV ------------------------------------------------------------------------------------------------

def test_a_review_csv_accepts_rejects_relabels_and_adds(corpus, tmp_path, admin_user, reviewer):
    reviewed, other = corpus
    csv = tmp_path / "review.csv"
    csv.write_text("document,start,end,label,decision,reviewer\n"
                   f"{other.pk},3,9,ORGANIZACAO,accept,ana\n"
                   f"{other.pk},12,14,PESSOA,reject,\n"
                   f"outro acórdão.pdf,0,1,TEMPO,add,ana\n", encoding="utf-8")
    call_command("import_review_csv", str(csv), "--user", reviewer.username)
    state = dict(Annotation.objects.filter(document=other).values_list("start", "status"))
    assert state == {3: "accepted", 12: "rejected", 0: "accepted"}
    assert Annotation.objects.get(document=other, start=3).reviewer == admin_user
    assert Annotation.objects.get(document=other, start=12).reviewer == reviewer


@pytest.mark.parametrize("content,message", [
    ("doc,start,end,label\n1,0,1,PESSOA\n", r"review.csv:1 \[header\]: the columns must be"),
    ("document,start,end,label,decision\n{doc},3,9,ORGANIZACAO,accept\n{doc},0,1,NADA,add\n",
     r"review.csv:3 \[label\]: unknown label 'NADA'"),
    ("document,start,end,label,decision\n{doc},3,9,ORGANIZACAO,accept\n{doc},0,999,PESSOA,add\n",
     r"review.csv:3 \[end\]: the span 0–999 is outside"),
    ("document,start,end,label,decision\n{doc},3,9,ORGANIZACAO,accept\n{doc},4,6,PESSOA,add\n",
     r"review.csv:3 \[decision\]: These words overlap"),
])
def test_a_bad_review_csv_row_is_reported_by_line_and_nothing_is_applied(corpus, tmp_path, content, message):
    _reviewed, other = corpus
    before = list(AnnotationEvent.objects.values_list("id", flat=True))
    csv = tmp_path / "review.csv"
    csv.write_text(content.format(doc=other.pk), encoding="utf-8")
    with pytest.raises(CommandError, match=message):
        call_command("import_review_csv", str(csv))
    assert list(AnnotationEvent.objects.values_list("id", flat=True)) == before


def test_the_export_page_and_the_admin_action_call_the_same_service(client, corpus, reviewer):
    from django.contrib.auth import get_user_model
    from django.urls import reverse

    reviewed, _other = corpus
    client.force_login(reviewer)
    response = client.get(reverse("training:export"), {"format": "conll", "reviewed": "1"})
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    assert response.content.decode() == interchange.annotations_export(format="conll", reviewed_only=True)
    assert client.get(reverse("training:export"), {"format": "xml"}).status_code == 400
    boss = get_user_model().objects.create_superuser("boss", "boss@example.org", "secret-pass-123")
    client.force_login(boss)
    response = client.post(reverse("admin:documents_document_changelist"),
                           {"action": "export_labelstudio", "_selected_action": [reviewed.pk]})
    assert response.content.decode() == interchange.annotations_export(format="labelstudio",
                                                                        document_ids=[reviewed.pk])

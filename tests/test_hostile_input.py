"""Hostile input against every JSON and form endpoint and every import command (issue 18).

Families: deep nesting, wrong types, NUL bytes, over-long strings, bad dates, XML entities (billion laughs,
external SYSTEM entities), sheets whose <dimension> lies, Unicode digits. Every answer must be a 4xx with a
reason (a JSON "error", a rendered form error, or a redirect carrying an error message), never a 5xx, and
nothing may be stored: no row in documents/annotation/training, no file in storage. Commands must fail with
a CommandError (a message, not a traceback) and store nothing either.

The last section walks config/urls.py: every route is POSTed hostile forms and a 5,000-deep JSON body, and
a route that accepts POST but is missing from the tables here fails the test, so a new endpoint cannot
escape these checks.
"""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile

import pytest
from django.apps import apps
from django.contrib.messages import constants as message_levels
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from annotation.services import Span, annotations_import
from annotation.services_classes import document_class_get_or_create
from lib.storage import files_removed_on_failure
from tests.training.excel_files import text_rows, token_rows, xlsx
from training.models import Dataset
from training.services.tokens import api_token_create

DEEP_ARRAY = "[" * 5000 + "]" * 5000
DEEP_OBJECT = '{"a": ' * 5000 + "1" + "}" * 5000
LS_CONFIG = ('<View><Labels name="label" toName="text"><Label value="PESSOA"/><Label value="LOCAL"/></Labels>'
             '<Text name="text" value="$text"/></View>')
LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1 if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
          + ']>')
EXTERNAL = '<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
TEXT = "O réu Maria Souza mora em Recife desde 2011."


# State: what "nothing stored" means ---------------------------------------------------------------------------

# Rows that record what a page showed, not what was sent: answering a refused review action with the review
# panel records the part of the page it shows (annotation.ReviewOpening), as any view of that panel does.
VIEW_RECORDS = {"annotation.ReviewOpening"}


def stored_state(media_root) -> dict:
    """Row counts of every docloop model and the files in storage."""
    counts = {model._meta.label: model.objects.count()
              for app in ("documents", "annotation", "training") for model in apps.get_app_config(app).get_models()
              if model._meta.label not in VIEW_RECORDS}
    files = sorted(str(p.relative_to(media_root)) for p in media_root.rglob("*") if p.is_file()) \
        if media_root.exists() else []
    return {"rows": counts, "files": files}


def has_reason(response) -> bool:
    """A 4xx that says why: a JSON error or problems, a non-empty page, or (405) the Allow header; or a
    redirect that carries an error message for the next page."""
    if response.status_code in (301, 302):
        queued = list(getattr(response.wsgi_request, "_messages", []))
        return any(m.level == message_levels.ERROR and str(m.message).strip() for m in queued)
    if response.status_code == 405:
        return bool(response.get("Allow"))
    if response.get("Content-Type", "").startswith("application/json"):
        body = response.json()
        return bool(body.get("error") or body.get("problems"))
    return bool(response.content.strip())


def refusal_problem(response, before: dict, media_root, *, allow_redirect: bool = False) -> str | None:
    """What is wrong with the answer to a hostile request (None: refused with a reason, nothing stored)."""
    status = response.status_code
    shown = response.content[:300]
    if not (400 <= status < 500 or (allow_redirect and status == 302)):
        return f"answered {status}: {shown!r}"
    if not has_reason(response):
        return f"answered {status} without a reason: {shown!r}"
    after = stored_state(media_root)
    if after != before:
        changed = {k: (v, after["rows"][k]) for k, v in before["rows"].items() if after["rows"][k] != v}
        return f"answered {status} but stored something: {changed}, files {set(after['files']) ^ set(before['files'])}"
    return None


def assert_refused(response, before: dict, media_root, *, allow_redirect: bool = False) -> None:
    problem = refusal_problem(response, before, media_root, allow_redirect=allow_redirect)
    assert problem is None, problem


# People and objects ---------------------------------------------------------------------------------------------

@pytest.fixture
def world(db, reviewer, admin_user, ready_document, entity_types):
    """A ready document with one predicted entity and a class, and API tokens for a reviewer and an admin."""
    annotations_import(document=ready_document, user=None, status="predicted",
                       spans=[Span(1, 3, "ORGANIZACAO", 0.7, "predicted", "model")])
    return {
        "document": ready_document,
        "annotation": ready_document.annotations.get(),
        "doc_class": document_class_get_or_create(name="Sentença"),
        "reviewer_token": api_token_create(user=reviewer)[1],
        "admin_token": api_token_create(user=admin_user)[1],
        "reviewer": reviewer, "admin": admin_user,
    }


def token_auth(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Token {token}"}


# JSON endpoints -------------------------------------------------------------------------------------------------

def _ls_webhook(*, regions=((5, 16, "PESSOA"),), text=TEXT, name=None, config=LS_CONFIG) -> dict:
    data = {"text": text, **({"name": name} if name is not None else {})}
    return {"action": "ANNOTATION_CREATED", "project": {"id": 1, "label_config": config},
            "task": {"id": 7, "data": data},
            "annotation": {"id": 3, "was_cancelled": False, "result": [
                {"id": f"r{i}", "from_name": "label", "to_name": "text", "type": "labels",
                 "value": {"start": s, "end": e, "text": text[s:e] if isinstance(s, int) and isinstance(e, int) else "",
                           "labels": [label] if isinstance(label, str) else label}}
                for i, (s, e, label) in enumerate(regions)]}}


def _ls_predict(**changes) -> dict:
    return {"tasks": [{"id": 1, "data": {"text": TEXT}}], "label_config": LS_CONFIG, **changes}


# endpoint -> (URL, who, the body cases of its own fields)
JSON_ENDPOINTS = {
    "labelstudio-setup": (lambda w: reverse("labelstudio:setup"), "reviewer_token", [
        {"schema": 5}, {"schema": ["<View/>"]}, {"schema": LAUGHS + "<View>&lol9;</View>"},
        {"schema": EXTERNAL + "<View>&xxe;</View>"}, {"schema": "<View>"}, {"schema": "<View>\x00</View>"},
    ]),
    "labelstudio-predict": (lambda w: reverse("labelstudio:predict"), "reviewer_token", [
        _ls_predict(tasks="x"), _ls_predict(tasks=[5]), _ls_predict(tasks=[{"data": {"text": 5}}]),
        _ls_predict(tasks={"a": 1}), _ls_predict(label_config=5),
        _ls_predict(label_config=LAUGHS + "<View>&lol9;</View>"),
        _ls_predict(label_config=EXTERNAL + LS_CONFIG.replace("<View>", "<View>&xxe;")),
    ]),
    "labelstudio-webhook": (lambda w: reverse("labelstudio:webhook"), "reviewer_token", [
        _ls_webhook(regions=[(5, 16, "P" * 65)]),  # over EntityType.name's 64 characters
        _ls_webhook(regions=[(5, 16, "PES\x00SOA")]),
        _ls_webhook(regions=[(5, 16, "PES\ud800SOA")]),
        _ls_webhook(name="a\x00b.pdf"),
        _ls_webhook(name="x" * 300 + ".pdf"),
        _ls_webhook(regions=[(5, 16, "PESSOA"), (11, 16, "LOCAL")]),  # overlapping: Label Studio allows it
        _ls_webhook(regions=[(5, 16, "PESSOA"), (5, 16, "PESSOA")]),
        _ls_webhook(regions=[(5, 7, "PESSOA"), (6, 11, "LOCAL")]),  # overlap once widened to whole words
        _ls_webhook(text="O réu\x00 Maria"),
        _ls_webhook(regions=[("5", 16, "PESSOA")]), _ls_webhook(regions=[(True, 16, "PESSOA")]),
        _ls_webhook(regions=[(5, 10**30, "PESSOA")]), _ls_webhook(regions=[(5, 16, 5)]),
        _ls_webhook(regions=[(5, 16, ["PESSOA", "LOCAL"])]),
        _ls_webhook(config=LAUGHS + "<View>&lol9;</View>"), _ls_webhook(config=EXTERNAL + "<View>&xxe;</View>"),
        {**_ls_webhook(), "annotation": {"result": 5}}, {**_ls_webhook(), "task": "x"},
    ]),
    "dataset-build": (lambda w: reverse("training:api-dataset-build"), "admin_token", [
        {"task": "token_classification", "labels": 5},
        {"task": "token_classification", "labels": [5]},
        {"task": "token_classification", "labels": {"a": 1}},
        {"task": "token_classification", "labels": ["LOC\x00AL"]},
        {"task": "token_classification", "labels": ["X" * 101]},
        {"task": "token_classification", "reviewed_before": "2024-13-45"},
        {"task": "token_classification", "reviewed_before": "2023-02-29"},
        {"task": "token_classification", "reviewed_before": "2024-01-01T25:61:00"},
        {"task": "token_classification", "reviewed_before": "ontem"},
        {"task": "token_classification", "reviewed_before": 20240101},
        {"task": "token_classification", "reviewed_before": "2024-01-01\x00"},
        {"task": "token_classification", "name": "a\x00b"},
        {"task": "token_classification", "name": "x" * 256},
        {"task": "token_classification", "name": 5},
        {"task": "token_classification", "name": "lone \ud800 surrogate"},
        {"task": "token_classification", "document_ids": "1,²"},
        {"task": "token_classification", "document_ids": ["١"]},
        {"task": "token_classification", "document_ids": [True]},
        {"task": "token_classification", "document_ids": [10**30]},
        {"task": "token_classification", "document_ids": [-3]},
        {"task": "token_classification", "document_ids": 7},
        {"task": 5}, {"task": "token_classification\x00"}, {"task": ["token_classification"]}, {},
    ]),
    "feedback": (lambda w: reverse("feedback", args=[w["document"].pk]), "admin_token", [
        {"task": 5}, {"task": ["token_classification"]}, {"task": "token\x00classification"}, {"task": "x" * 10000},
        {"task": {"a": 1}},
    ]),
}

# Bodies that no JSON endpoint may take, whatever its fields.
BAD_BODIES = {
    "deep-array": DEEP_ARRAY, "deep-object": DEEP_OBJECT, "deep-inside": '{"task": ' + DEEP_ARRAY + "}",
    "not-json": "{nope", "not-an-object": "[1, 2]", "a-number": "5", "not-utf8": b"\xff\xfe{\x00}",
    "truncated": '{"task": "token_classification"', "empty-array": "[]",
}

@pytest.mark.parametrize("endpoint", list(JSON_ENDPOINTS))
def test_json_endpoints_refuse_hostile_bodies_with_a_reason_and_store_nothing(client, world, media_root, endpoint):
    url, who, bodies = JSON_ENDPOINTS[endpoint]
    cases = [(f"fields {i}", body) for i, body in enumerate(bodies)] + list(BAD_BODIES.items())
    failures = []
    for case, body in cases:
        raw = body if isinstance(body, str | bytes) else json.dumps(body)
        before = stored_state(media_root)
        response = client.post(url(world), raw, content_type="application/json", **token_auth(world[who]))
        problem = refusal_problem(response, before, media_root)
        if problem is None and not response.json().get("error"):
            problem = "no error in the JSON answer"
        if problem:
            failures.append(f"{case} {str(body)[:80]!r}: {problem}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("endpoint", list(JSON_ENDPOINTS))
def test_a_json_body_over_the_size_limit_gets_413(client, world, media_root, settings, endpoint):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    url, who, _bodies = JSON_ENDPOINTS[endpoint]
    before = stored_state(media_root)
    response = client.post(url(world), json.dumps({"task": "x" * 100_000}), content_type="application/json",
                           **token_auth(world[who]))
    assert_refused(response, before, media_root)
    assert response.status_code == 413 and "over the limit" in response.json()["error"]


def test_the_build_endpoint_names_the_field_and_its_problem(client, world):
    url, auth = reverse("training:api-dataset-build"), token_auth(world["admin_token"])
    for body, expected in (({"task": "token_classification", "labels": 5}, "“labels” must be a list"),
                           ({"task": "token_classification", "reviewed_before": "2024-13-45"}, "“reviewed_before”"),
                           ({"task": "token_classification", "name": "a\x00b"}, "control character (U+0000)"),
                           ({"task": "token_classification", "document_ids": "1,²"}, "digits 0-9")):
        response = client.post(url, json.dumps(body), content_type="application/json", **auth)
        assert response.status_code == 422 and expected in response.json()["error"], response.json()
    deep = client.post(url, DEEP_ARRAY, content_type="application/json", **auth)
    assert deep.status_code == 422 and "nested more than 64 levels" in deep.json()["error"]


def test_the_build_endpoint_takes_the_same_hostile_values_as_form_fields(client, world, media_root):
    url, auth = reverse("training:api-dataset-build"), token_auth(world["admin_token"])
    for fields in ({"task": "token_classification", "name": "a\x00b"},
                   {"task": "token_classification", "reviewed_before": "2024-13-45"},
                   {"task": "token_classification", "document_ids": "²"},
                   {"task": "token_classification", "labels": "A,B\x00"}):
        before = stored_state(media_root)
        assert_refused(client.post(url, fields, **auth), before, media_root)


def test_label_studio_messages_name_the_region(client, world):
    url, auth = reverse("labelstudio:webhook"), token_auth(world["reviewer_token"])
    for payload, expected in ((_ls_webhook(regions=[(5, 16, "P" * 65)]), "over the limit of 64"),
                              (_ls_webhook(regions=[(5, 16, "PESSOA"), (11, 16, "LOCAL")]), "Regions 0 and 1 overlap"),
                              (_ls_webhook(name="a\x00b.pdf"), "data.name is refused"),
                              (_ls_webhook(config=EXTERNAL + "<View>&xxe;</View>"), "DOCTYPE")):
        response = client.post(url, json.dumps(payload), content_type="application/json", **auth)
        assert response.status_code == 400 and expected in response.json()["error"], response.json()


# Excel uploads: XML entities, dimension lies, budgets -------------------------------------------------------------

def rewrite_part(data: bytes, part: str, change) -> bytes:
    """The workbook with one part's XML text passed through change()."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            content = source.read(info)
            if info.filename == part:
                content = change(content.decode("utf-8")).encode("utf-8")
            target.writestr(info, content)
    return out.getvalue()


def with_doctype(data: bytes, part: str, doctype: str, entity: str) -> bytes:
    """A DOCTYPE before the part's root element, and (in the sheet) a cell that uses the entity."""
    def change(xml: str) -> str:
        xml = re.sub(r"^<\?xml[^>]*\?>\s*", "", xml)
        if part == "xl/worksheets/sheet1.xml":
            xml = re.sub(r"<c r=\"A2\"[^>]*>.*?</c>", f'<c r="A2" t="inlineStr"><is><t>{entity}</t></is></c>', xml,
                         count=1, flags=re.S)
        return doctype + xml
    return rewrite_part(data, part, change)


def with_dimension(data: bytes, ref: str) -> bytes:
    return rewrite_part(data, "xl/worksheets/sheet1.xml",
                        lambda xml: re.sub(r'<dimension ref="[^"]*"\s*/>', f'<dimension ref="{ref}"/>', xml))


def with_cell_text(data: bytes, cell: str, text: str) -> bytes:
    """Cell `cell` of the first sheet as an inline string (escapes such as _x0000_ stay as written)."""
    return rewrite_part(data, "xl/worksheets/sheet1.xml", lambda xml: re.sub(
        rf'<c r="{cell}"[^>]*>.*?</c>', f'<c r="{cell}" t="inlineStr"><is><t>{text}</t></is></c>', xml, count=1,
        flags=re.S))


def _workbooks() -> dict[str, tuple[bytes, str]]:
    text = xlsx(text_rows(8))
    return {
        "billion-laughs-in-the-sheet": (with_doctype(text, "xl/worksheets/sheet1.xml", LAUGHS, "&lol9;"), "DOCTYPE"),
        "external-entity-in-the-sheet": (with_doctype(text, "xl/worksheets/sheet1.xml", EXTERNAL, "&xxe;"), "DOCTYPE"),
        "external-entity-in-the-workbook": (with_doctype(text, "xl/workbook.xml", EXTERNAL, ""), "DOCTYPE"),
        "billion-laughs-in-the-content-types": (with_doctype(text, "[Content_Types].xml", LAUGHS, ""), "DOCTYPE"),
        # XML 1.0 cannot carry NUL (&#0; is not well-formed) but can carry the C1 controls (&#x85;).
        "nul-in-a-cell": (with_cell_text(text, "A3", "texto &#0; nulo"), "cannot be read"),
        "control-character-in-a-label": (with_cell_text(text, "B3", "RECU&#x85;RSO"), "control character"),
        "label-over-100-characters": (with_cell_text(text, "B3", "L" * 101), "over the limit of 100"),
        "tag-type-over-64-characters": (with_cell_text(xlsx(token_rows(3)), "B2",
                                                       "B-" + "P" * 80 + " I-" + "P" * 80 + " O O B-LOCAL O O O"),
                                        "over the limit of 64"),
        "rows-past-the-budget-declared-as-two": (with_dimension(xlsx(text_rows(12)), "A1:B2"), "more than 10 rows"),
        "not-xml-at-all": (rewrite_part(text, "xl/worksheets/sheet1.xml", lambda xml: xml[:200]), "cannot be read"),
    }


WORKBOOK_CASES = list(_workbooks())


def _upload(data: bytes, name: str = "dados.xlsx") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


@pytest.mark.parametrize("route", ["training:api-dataset-validate", "training:api-datasets"])
def test_hostile_workbooks_are_refused_by_the_api_with_the_reason(client, world, media_root, settings, route):
    settings.DOCLOOP_MAX_DATASET_ROWS = 10
    failures = []
    for case, (data, expected) in _workbooks().items():
        before = stored_state(media_root)
        response = client.post(reverse(route), {"file": _upload(data)}, **token_auth(world["admin_token"]))
        problem = refusal_problem(response, before, media_root)
        if problem is None:
            messages = " ".join(p["message"] for p in response.json()["problems"])
            if response.status_code != 422 or expected not in messages or "root:" in messages:  # no /etc/passwd
                problem = f"answered {response.status_code}: {messages}"
        if problem:
            failures.append(f"{case}: {problem}")
    assert not failures, "\n".join(failures)


def test_hostile_workbooks_are_refused_by_the_upload_page(client, world, media_root, settings):
    settings.DOCLOOP_MAX_DATASET_ROWS = 10
    client.force_login(world["admin"])
    failures = []
    for case, (data, expected) in _workbooks().items():
        for action in ("validate", "store"):
            before = stored_state(media_root)
            response = client.post(reverse("training:dataset-upload"), {"file": _upload(data), "action": action},
                                   HTTP_HX_REQUEST="true")
            problem = refusal_problem(response, before, media_root)
            if problem is None and expected not in response.content.decode():
                problem = f"the page does not say {expected!r}"
            if problem:
                failures.append(f"{case} ({action}): {problem}")
    assert not failures, "\n".join(failures)


def test_hostile_workbooks_are_refused_by_upload_dataset(tmp_path, world, media_root, settings):
    settings.DOCLOOP_MAX_DATASET_ROWS = 10
    for case, (data, expected) in _workbooks().items():
        path = tmp_path / f"{case}.xlsx"
        path.write_bytes(data)
        before = stored_state(media_root)
        with pytest.raises(CommandError, match=re.escape(expected)):
            call_command("upload_dataset", str(path), stdout=io.StringIO())
        assert stored_state(media_root) == before, case


def test_a_sheet_whose_dimension_declares_fewer_rows_is_read_to_its_end(client, world):
    data = with_dimension(xlsx(text_rows(10)), "A1:B3")  # 10 data rows, declared as 2
    auth = token_auth(world["admin_token"])
    checked = client.post(reverse("training:api-dataset-validate"), {"file": _upload(data)}, **auth)
    assert checked.status_code == 200 and checked.json()["statistics"]["rows"] == 10, checked.json()
    stored = client.post(reverse("training:api-datasets"), {"file": _upload(data)}, **auth)
    assert stored.status_code == 201
    assert Dataset.objects.get().statistics["rows"] == 10


def test_a_sheet_declaring_fewer_columns_than_it_has_is_read_whole(client, world):
    data = with_dimension(xlsx(text_rows(4)), "A1:A2")  # the label column and three rows hidden by the lie
    response = client.post(reverse("training:api-dataset-validate"), {"file": _upload(data)},
                           **token_auth(world["admin_token"]))
    assert response.status_code == 200 and response.json()["statistics"]["rows"] == 4, response.json()


def test_a_sheet_over_the_row_budget_is_refused_whatever_its_dimension_says(client, world, media_root, settings):
    settings.DOCLOOP_MAX_DATASET_ROWS = 50
    data = with_dimension(xlsx(text_rows(60)), "A1:B2")
    before = stored_state(media_root)
    response = client.post(reverse("training:api-datasets"), {"file": _upload(data)},
                           **token_auth(world["admin_token"]))
    assert_refused(response, before, media_root)
    assert "more than 50 rows" in response.json()["problems"][0]["message"]


@pytest.mark.parametrize("fields", [{"name": "a\x00b"}, {"name": "x" * 256}, {"sheet": "da\x00dos"},
                                    {"task": "x"}, {"task": "token_classification\x00"}],
                         ids=["nul-name", "long-name", "nul-sheet", "unknown-task", "nul-task"])
def test_the_workbook_api_refuses_hostile_form_fields(client, world, media_root, fields):
    for route in ("training:api-dataset-validate", "training:api-datasets"):
        before = stored_state(media_root)
        response = client.post(reverse(route), {"file": _upload(xlsx(text_rows(4))), **fields},
                               **token_auth(world["admin_token"]))
        assert_refused(response, before, media_root)


# Form endpoints (session, as the pages post them) --------------------------------------------------------------

def _form_routes(w) -> dict[str, tuple[str, str, list[str]]]:
    """route -> (URL, who, the fields its form reads)."""
    doc, annotation = w["document"].pk, w["annotation"].pk
    routes = {
        "annotation:add": (reverse("annotation:add", args=[doc]), "reviewer", ["start", "end", "label"]),
        "annotation:accept-above": (reverse("annotation:accept-above", args=[doc]), "reviewer", ["threshold"]),
        "annotation:revert": (reverse("annotation:revert", args=[doc]), "reviewer", ["event", "head"]),
        "annotation:labels": (reverse("annotation:labels"), "admin",
                              ["new-name", "new-color", "new-description", "new-shortcut"]),
        "annotation:labels-merge": (reverse("annotation:labels-merge"), "admin", ["source", "target"]),
        "annotation:class-set": (reverse("annotation:class-set", args=[doc]), "reviewer", ["label", "revision"]),
        "documents:upload": (reverse("documents:upload"), "reviewer", ["file"]),
        "training:start": (reverse("training:start"), "admin",
                           ["task", "dataset", "epochs", "batch_size", "learning_rate", "max_length", "seed"]),
        "training:dataset-upload": (reverse("training:dataset-upload"), "admin", ["file", "task", "sheet", "name"]),
        "training:dataset-build": (reverse("training:dataset-build"), "admin",
                                   ["task", "labels", "reviewed_before", "document_ids", "name", "seed",
                                    "validation_fraction", "test_fraction", "finish_accepted", "finish_weight"]),
        "training:evaluation-set-create": (reverse("training:evaluation-set-create"), "admin",
                                           ["task", "documents", "size"]),
    }
    for action in ("accept", "reject", "relabel", "resize", "delete", "revert"):
        routes[f"annotation:action-{action}"] = (reverse("annotation:action", args=[doc, annotation, action]),
                                                 "reviewer", ["revision", "label", "start", "end", "event"])
    for action in ("accept", "reject"):
        routes[f"annotation:class-action-{action}"] = (reverse("annotation:class-action", args=[doc, action]),
                                                       "reviewer", ["revision"])
    return routes


FORM_ROUTES = ["annotation:add", "annotation:accept-above", "annotation:revert", "annotation:labels",
               "annotation:labels-merge", "annotation:class-set", "documents:upload", "training:start",
               "training:dataset-upload", "training:dataset-build", "training:evaluation-set-create"] + [f"annotation:action-{a}" for a in
                                              ("accept", "reject", "relabel", "resize", "delete", "revert")] + \
              ["annotation:class-action-accept", "annotation:class-action-reject"]
HOSTILE_VALUES = {
    "nul": "1\x00", "superscript-two": "²", "arabic-indic-digits": "١٢", "negative": "-1",
    "huge-number": "9" * 40, "not-a-number": "nan", "infinity": "inf", "bad-date": "2024-13-45",
    "over-long": "x" * 70_000, "empty": "",
}


@pytest.mark.parametrize("route", FORM_ROUTES)
def test_form_endpoints_refuse_hostile_fields_with_a_reason_and_store_nothing(client, world, media_root, route):
    url, who, fields = _form_routes(world)[route]
    client.force_login(world[who])
    failures = []
    for case, value in HOSTILE_VALUES.items():
        for htmx in ({"HTTP_HX_REQUEST": "true"}, {}):
            before = stored_state(media_root)
            response = client.post(url, {field: value for field in fields}, **htmx)
            problem = refusal_problem(response, before, media_root, allow_redirect=True)
            if problem:
                failures.append(f"{case}{' (htmx)' if htmx else ''}: {problem}")
    assert not failures, "\n".join(failures)


def test_a_class_label_of_unicode_digits_is_refused_not_a_500(client, world, media_root):
    client.force_login(world["reviewer"])
    for label in ("²", "١", "𝟙"):
        before = stored_state(media_root)
        response = client.post(reverse("annotation:class-set", args=[world["document"].pk]),
                               {"label": label, "revision": 0}, HTTP_HX_REQUEST="true")
        assert_refused(response, before, media_root)
        assert "Choose a valid document class" in response.content.decode()


# Access -------------------------------------------------------------------------------------------------------

def test_basic_auth_must_name_the_tokens_own_user(client, world):
    token = world["reviewer_token"]
    for username, status in (("anyone", 401), (world["admin"].username, 401), ("", 401),
                             (world["reviewer"].username, 200)):
        basic = base64.b64encode(f"{username}:{token}".encode()).decode()
        response = client.get(reverse("labelstudio:health"), HTTP_AUTHORIZATION=f"Basic {basic}")
        assert response.status_code == status, username


# Import commands ---------------------------------------------------------------------------------------------------

CONLL_OK = "O O\nréu O\nMaria B-PESSOA\nSouza I-PESSOA\nmora O\nem O\nRecife B-LOCAL\n. O\n"
CONLL_CASES = {
    "tag-type-over-64": ("Maria B-" + "P" * 80 + "\nSouza O\n", "over the limit of 64"),
    "nul-in-a-token": ("Ma\x00ria B-PESSOA\nSouza O\n", "cannot be written to a PDF"),
    "nul-in-a-tag": ("Maria B-PES\x00SOA\nSouza O\n", "control character"),
    "not-bio": ("Maria X-PESSOA\nSouza O\n", "not BIO"),
    "one-column": ("Maria\n", "expected 'token TAG'"),
    "empty": ("\n\n", "no tokens"),
    "not-utf8": (b"Maria B-PESSOA\n\xff\xfe O\n", "utf-8"),
}


@pytest.mark.parametrize("case", list(CONLL_CASES))
def test_import_conll_refuses_a_hostile_file_and_stores_nothing_of_it(tmp_path, world, media_root, case):
    content, expected = CONLL_CASES[case]
    path = tmp_path / "hostile.conll"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    before = stored_state(media_root)
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 of 1 file"):
        call_command("import_conll", str(path), "--reviewed", stdout=out)
    assert expected in out.getvalue(), out.getvalue()
    assert stored_state(media_root) == before


def test_import_conll_stores_a_good_file_beside_a_refused_one_and_no_half_document(tmp_path, world, media_root):
    (tmp_path / "bad.conll").write_text(CONLL_CASES["tag-type-over-64"][0], encoding="utf-8")
    (tmp_path / "good.conll").write_text(CONLL_OK, encoding="utf-8")
    before = stored_state(media_root)["rows"]["documents.Document"]
    with pytest.raises(CommandError):
        call_command("import_conll", str(tmp_path), "--reviewed", stdout=io.StringIO())
    from documents.models import Document

    assert Document.objects.count() == before + 1
    good = Document.objects.get(original_name="good.pdf")
    assert good.is_reviewed and good.annotations.count() == 2
    assert not Document.objects.filter(original_name="bad.pdf").exists()


def _jsonl(**changes) -> str:
    return json.dumps({"name": "doc.pdf", "tokens": ["Maria", "Souza", "mora"],
                       "spans": [{"start": 0, "end": 2, "label": "PESSOA"}], **changes}) + "\n"


def _ls_file(**changes) -> str:
    task = {"data": {"text": "Maria Souza mora"}, "annotations": [{"result": [
        {"type": "labels", "value": {"start": 0, "end": 11, "labels": ["PESSOA"]}}]}], **changes}
    return json.dumps([task])


ANNOTATION_FILES = {
    "jsonl-deep": ("jsonl", '{"tokens": ' + DEEP_ARRAY + "}\n", "nested more than"),
    "jsonl-tokens-a-number": ("jsonl", _jsonl(tokens=5), "expected list"),
    "jsonl-start-as-text": ("jsonl", _jsonl(spans=[{"start": "²", "end": 2, "label": "PESSOA"}]), "expected int"),
    "jsonl-start-true": ("jsonl", _jsonl(spans=[{"start": True, "end": 2, "label": "PESSOA"}]), "expected int"),
    "jsonl-nul-in-the-name": ("jsonl", _jsonl(name="a\x00b.pdf"), "control character"),
    "jsonl-nul-in-a-label": ("jsonl", _jsonl(spans=[{"start": 0, "end": 2, "label": "PES\x00SOA"}]),
                             "control character"),
    "jsonl-label-over-64": ("jsonl", _jsonl(spans=[{"start": 0, "end": 2, "label": "P" * 80}]), "over the limit"),
    "jsonl-overlap": ("jsonl", _jsonl(spans=[{"start": 0, "end": 2, "label": "PESSOA"},
                                             {"start": 1, "end": 3, "label": "LOCAL"}]), "overlaps"),
    "jsonl-nul-in-a-token": ("jsonl", _jsonl(tokens=["Ma\x00ria", "Souza", "mora"]), "cannot be written"),
    "labelstudio-deep": ("labelstudio", '[{"data": ' + DEEP_OBJECT + "}]", "nested more than"),
    "labelstudio-data-a-list": ("labelstudio", _ls_file(data=[1]), "expected dict"),
    "labelstudio-nul-in-the-name": ("labelstudio", _ls_file(data={"text": "Maria Souza mora", "name": "a\x00"}),
                                    "control character"),
    "labelstudio-label-over-64": ("labelstudio", _ls_file(annotations=[{"result": [
        {"type": "labels", "value": {"start": 0, "end": 11, "labels": ["P" * 80]}}]}]), "over the limit"),
    "labelstudio-offsets-as-text": ("labelstudio", _ls_file(annotations=[{"result": [
        {"type": "labels", "value": {"start": "0", "end": 11, "labels": ["PESSOA"]}}]}]), "expected int"),
    "conll-tag-type-over-64": ("conll", "Maria B-" + "P" * 80 + "\nSouza O\n", "over the limit"),
}


@pytest.mark.parametrize("case", list(ANNOTATION_FILES))
def test_import_annotations_refuses_a_hostile_file_and_stores_nothing(tmp_path, world, media_root, case):
    format, content, expected = ANNOTATION_FILES[case]
    path = tmp_path / f"hostile.{format}"
    path.write_text(content, encoding="utf-8")
    before = stored_state(media_root)
    with pytest.raises(CommandError, match=re.escape(expected)):
        call_command("import_annotations", "--format", format, str(path), "--create-labels", stdout=io.StringIO())
    assert stored_state(media_root) == before


def _review_csv(document: str = "{doc}", start: str = "1", end: str = "3", label: str = "ORGANIZACAO",
                decision: str = "accept") -> str:
    return f"document,start,end,label,decision\n{document},{start},{end},{label},{decision}\n"


REVIEW_CSVS = {
    "document-superscript": (_review_csv(document="²"), "no document"),
    "document-arabic-indic": (_review_csv(document="١"), "no document"),
    "document-nul": (_review_csv(document="a\x00b"), "control character"),
    "document-huge-id": (_review_csv(document="9" * 40), "no document"),
    "start-superscript": (_review_csv(start="²"), "word numbers"),
    "start-arabic-indic": (_review_csv(start="١"), "word numbers"),
    "label-nul": (_review_csv(label="ORGA\x00NIZACAO"), "control character"),
    "label-over-long": (_review_csv(label="X" * 300), "over the limit"),
    "field-over-the-csv-limit": (_review_csv(label="X" * 200_000), "not a readable CSV"),
    "bad-decision": (_review_csv(decision="maybe"), "decision must be"),
}


@pytest.mark.parametrize("case", list(REVIEW_CSVS))
def test_import_review_csv_refuses_a_hostile_file_and_stores_nothing(tmp_path, world, media_root, case):
    content, expected = REVIEW_CSVS[case]
    path = tmp_path / "review.csv"
    path.write_text(content.replace("{doc}", str(world["document"].pk)), encoding="utf-8")
    before = stored_state(media_root)
    with pytest.raises(CommandError, match=re.escape(expected)):
        call_command("import_review_csv", str(path), stdout=io.StringIO())
    assert stored_state(media_root) == before


@pytest.mark.parametrize("option", [["--name", "a\x00b"], ["--sheet", "da\x00dos"], ["--name", "x" * 300]])
def test_upload_dataset_refuses_hostile_options(tmp_path, world, media_root, option):
    path = tmp_path / "dados.xlsx"
    path.write_bytes(xlsx(text_rows(4)))
    before = stored_state(media_root)
    with pytest.raises(CommandError, match="refused"):
        call_command("upload_dataset", str(path), *option, stdout=io.StringIO())
    assert stored_state(media_root) == before


# Storage written before a failure is removed ------------------------------------------------------------------------

def test_files_written_before_a_failure_are_removed(media_root, db):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    with pytest.raises(RuntimeError), files_removed_on_failure() as written:
        name = default_storage.save("documents/orphan.pdf", ContentFile(b"%PDF-1.4"))
        written.add(default_storage, name)
        assert default_storage.exists(name)
        raise RuntimeError("the row could not be written")
    assert not default_storage.exists(name)


# Every route: nothing answers hostile input with a 5xx ----------------------------------------------------------

# Routes that accept POST but read nothing from the body (the hostile sweep below still posts to them).
NO_INPUT = {"annotation:presence", "annotation:finish", "annotation:undo", "training:run-cancel", "training:run-reproduce",
            "training:version-activate", "training:api-run-cancel", "training:api-run-reproduce",
            "training:api-version-activate", "training:adapted-start", "training:adapted-cancel", "logout", "login",
            "set_language"}
COVERED = {"annotation:add", "annotation:accept-above", "annotation:revert", "annotation:labels",
           "annotation:label-edit", "annotation:labels-merge", "annotation:class-set", "annotation:class-action",
           "annotation:action", "documents:upload", "training:start", "training:dataset-upload", "training:dataset-build",
           "training:api-datasets", "training:api-dataset-validate", "training:api-dataset-build", "feedback",
           "training:evaluation-set-create",
           "labelstudio:setup", "labelstudio:predict", "labelstudio:webhook"}
SKIPPED_PREFIXES = ("admin/",)  # Django's admin: its own forms and tests


def _routes(resolver: URLResolver | None = None, prefix: str = "", namespace: str = ""):
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}:{entry.namespace}" if namespace and entry.namespace else \
                (entry.namespace or namespace)
            yield from _routes(entry, prefix + str(entry.pattern), inner)
        elif isinstance(entry, URLPattern) and entry.name:
            path = prefix + str(entry.pattern)
            if not path.startswith(SKIPPED_PREFIXES):
                yield (f"{namespace}:{entry.name}" if namespace else entry.name), entry


def _kwargs(pattern: URLPattern, w) -> dict:
    values = {"pk": w["document"].pk, "annotation_id": w["annotation"].pk, "action": "accept", "number": 1,
              "request_id": 1, "fmt": "jsonl"}
    names = list(pattern.pattern.regex.groupindex)
    unknown = [name for name in names if name not in values]
    assert not unknown, f"{pattern.name}: add a value for {unknown} to this test"
    return {name: values[name] for name in names}


SWEEP_FORM = {"label": "²", "revision": "1\x00", "name": "a\x00b", "task": "x" * 10_000, "start": "9" * 40,
              "end": "١٢", "threshold": "nan", "event": "-1", "head": "2024-13-45", "documents": "1,²", "size": "١",
              "next": "\x00", "accept_standing": "²", "based_on": "9" * 40}


def test_no_route_answers_hostile_input_with_a_5xx(client, world):
    """Every route of config/urls.py (the admin aside), POSTed a hostile form and a 5,000-deep JSON body."""
    failures, uncovered = [], []
    for route, entry in sorted(_routes(), key=lambda item: item[0]):
        url = reverse(route, kwargs=_kwargs(entry, world))
        accepts_post = False
        for kwargs in ({"data": SWEEP_FORM, "HTTP_HX_REQUEST": "true"}, {"data": SWEEP_FORM},
                       {"data": DEEP_ARRAY, "content_type": "application/json", "HTTP_ACCEPT": "application/json"}):
            client.force_login(world["admin"])  # again: the sweep also posts to logout
            response = client.post(url, **kwargs)
            if response.status_code >= 500:
                failures.append(f"{route}: {response.status_code} {response.content[:200]!r}")
            accepts_post |= response.status_code != 405
        if accepts_post and route not in COVERED | NO_INPUT:
            uncovered.append(route)
    assert not failures, "\n".join(failures)
    assert not uncovered, f"these routes take POST: add their hostile cases to this module: {uncovered}"

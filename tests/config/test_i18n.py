import re
import shutil
import subprocess

import pytest
from django.urls import reverse


def test_pages_are_in_brazilian_portuguese_by_default(client, reviewer, settings):
    settings.LANGUAGE_CODE = "pt-br"
    client.force_login(reviewer)
    body = client.get(reverse("documents:list"), HTTP_ACCEPT_LANGUAGE="").content.decode()
    assert "Documentos" in body and "Enviar um PDF" in body


def test_english_is_available(client, reviewer):
    client.force_login(reviewer)
    client.post(reverse("set_language"), {"language": "en", "next": "/"})
    body = client.get(reverse("documents:list")).content.decode()
    assert "Upload a PDF" in body


def test_the_portuguese_catalogue_translates_every_message_it_holds(settings):
    """Every msgid in locale/pt_BR has a translation that is not marked fuzzy (run makemessages to add
    new ones; a new string without its Portuguese fails here)."""
    from pathlib import Path

    po = (Path(settings.BASE_DIR) / "locale" / "pt_BR" / "LC_MESSAGES" / "django.po").read_text(encoding="utf-8")
    untranslated = []
    for block in po.split("\n\n")[1:]:
        lines = block.strip().splitlines()
        if any(line.startswith("#,") and "fuzzy" in line for line in lines):
            untranslated.append(block)
            continue
        msgstr = [line for line in lines if line.startswith("msgstr")]
        if msgstr and all(line.endswith('""') for line in msgstr):
            following = lines[lines.index(msgstr[-1]) + 1:]
            if not any(line.startswith('"') for line in following):
                untranslated.append(block)
    assert untranslated == []


def _catalogues(settings) -> list:
    from pathlib import Path

    folders = [Path(p) for p in settings.LOCALE_PATHS]
    return sorted(po for folder in folders for po in folder.glob("*/LC_MESSAGES/*.po"))


def _msgfmt(*args: str) -> subprocess.CompletedProcess:
    """GNU msgfmt (gettext), which `make install` already needs for compilemessages."""
    msgfmt = shutil.which("msgfmt")
    if msgfmt is None:
        pytest.fail("msgfmt not found: install gettext (apt-get install gettext), as compilemessages needs")
    return subprocess.run([msgfmt, *args], capture_output=True, text=True, check=False)


def test_there_is_a_portuguese_catalogue(settings):
    assert [po.parent.parent.name for po in _catalogues(settings)] == ["pt_BR"]


def test_every_catalogue_compiles_with_msgfmt_checks(settings):
    """`msgfmt -c` (what compilemessages runs, plus its format checks): a msgstr that drops or renames
    a %(name)s placeholder would raise KeyError or show a wrong text at runtime, and compilemessages
    refuses a catalogue with fatal errors."""
    for po in _catalogues(settings):
        result = _msgfmt("--check", "-o", "/dev/null", str(po))
        assert result.returncode == 0, f"{po}:\n{result.stderr}"


def test_msgfmt_finds_no_fuzzy_or_untranslated_portuguese_entry(settings):
    """gettext's own count, which also sees the plural forms and multi-line entries of each message."""
    for po in _catalogues(settings):
        result = _msgfmt("--statistics", "-o", "/dev/null", str(po))
        assert result.returncode == 0, f"{po}:\n{result.stderr}"
        assert "fuzzy" not in result.stderr and "untranslated" not in result.stderr, f"{po}: {result.stderr}"


def test_plural_messages_keep_their_number(settings):
    """Each plural form of a python-format message shows the number it is given (msgfmt accepts a
    msgstr[0] without the placeholder, as in "uma página"; docloop's messages always show it)."""
    placeholder = re.compile(r"%\((\w+)\)")
    for po in _catalogues(settings):
        text = po.read_text(encoding="utf-8")
        for block in text.split("\n\n"):
            if "msgid_plural" not in block or "python-format" not in block:
                continue
            entry = _entry(block)
            wanted = set(placeholder.findall(entry["msgid_plural"]))
            for key, value in entry.items():
                if key.startswith("msgstr["):
                    assert set(placeholder.findall(value)) == wanted, f"{po}: {entry['msgid']!r} {key}"


def _entry(block: str) -> dict[str, str]:
    """The fields of one .po entry, continuation lines joined (unescaped enough for placeholders)."""
    fields: dict[str, str] = {}
    key = None
    for line in block.strip().splitlines():
        if line.startswith("#"):
            continue
        if line.startswith('"') and key:
            fields[key] += line[1:-1]
        else:
            key, _, value = line.partition(" ")
            fields[key] = value.strip()[1:-1]
    return fields


# Labels that are the same word in both languages.
SAME_IN_BOTH = {"id", "sha-256", "f1", "ocr", "host", "django-rq"}


def _admin_labels(model_admin, request) -> dict[str, object]:
    """Every label the admin shows for a model: list columns, filter titles and change form fields."""
    from django.contrib.admin.utils import get_fields_from_path, label_for_field

    model = model_admin.model
    labels = {f"column {name}": label_for_field(name, model, model_admin)
              for name in model_admin.get_list_display(request)}
    for item in model_admin.get_list_filter(request):
        path = item[0] if isinstance(item, tuple) else item
        if isinstance(path, str):
            labels[f"filter {path}"] = get_fields_from_path(model, path)[-1].verbose_name
        else:
            labels[f"filter {path.__name__}"] = path.title
    form = model_admin.get_form(request, None)()
    for name in model_admin.get_fields(request):
        if name in form.fields:
            labels[f"field {name}"] = form.fields[name].label
        else:  # a read-only field: the admin reads the form's Meta.labels first
            labels[f"field {name}"] = ((form._meta.labels or {}).get(name)
                                       or label_for_field(name, model, model_admin, form=form))
    return labels


def test_every_admin_label_reads_in_portuguese(portuguese, rf, db):
    """Columns, filters and form fields of every admin page, django-axes' included: a label left in English
    is a field without a verbose_name or a string missing from the catalogue."""
    from django.contrib import admin
    from django.contrib.auth import get_user_model
    from django.utils import translation

    import config.urls  # noqa: F401 (re-registers django-rq's and django-axes' admins)

    request = rf.get("/admin/")
    request.user = get_user_model().objects.create_superuser("boss", "boss@example.org", "secret-pass-123")
    english = []
    for model, model_admin in admin.site._registry.items():
        labels = {where: str(label) for where, label in _admin_labels(model_admin, request).items()}
        with translation.override("en"):
            in_english = {where: str(label) for where, label in _admin_labels(model_admin, request).items()}
        english += [f"{model._meta.label} {where}: {label}" for where, label in labels.items()
                    if label == in_english[where] and label.lower() not in SAME_IN_BOTH]
    assert english == [], "\n".join(english)


def test_the_admin_confirms_an_added_document_class_in_words_that_agree(portuguese, client, db):
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.create_superuser("boss", "boss@example.org", "secret-pass-123"))
    response = client.post(reverse("admin:annotation_documentclass_add"),
                           {"name": "Petição", "description": "", "color": "#b0bec5"}, follow=True)
    body = re.sub(r"<[^>]+>", "", response.content.decode())  # the name is a link to the new row
    assert "Registro “Petição” (classe de documento) adicionado com sucesso." in body
    assert "O classe" not in body


def test_the_history_names_entity_states_in_portuguese(portuguese, client, reviewer, ready_document, entity_types):
    from annotation.services import annotation_accept, annotation_create

    annotation = annotation_create(document=ready_document, start=1, end=3, label=entity_types["PESSOA"],
                                   user=reviewer)
    annotation_accept(annotation=annotation, user=reviewer)
    client.force_login(reviewer)
    body = client.get(reverse("annotation:history", args=[ready_document.pk])).content.decode()
    assert "PESSOA · aceita ·" in body
    assert "· accepted ·" not in body


def test_the_queue_counts_pages_in_portuguese(portuguese, client, reviewer, make_pdf):
    from documents.pdf import pdf_render_lines
    from documents.services import document_create, document_extract

    one = document_extract(document=document_create(data=make_pdf(), name="uma.pdf")[0])
    two = document_extract(document=document_create(
        data=pdf_render_lines([["Primeira", "página", "."]] * 60 + [["Segunda", "."]]), name="duas.pdf")[0])
    assert (one.page_count, two.page_count) == (1, 2)
    client.force_login(reviewer)
    body = client.get(reverse("queue")).content.decode()
    assert "1 página" in body and "2 páginas" in body
    assert "próxima página" not in body

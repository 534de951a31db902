import pytest
from django.core.management import CommandError, call_command

from annotation.models import Annotation, AnnotationEvent
from annotation.selectors import accepted_spans
from documents.models import Document

CONLL = """O O
Ministério B-ORGANIZACAO
Público I-ORGANIZACAO
recorreu O
. O

João B-PESSOA
da I-PESSOA
Silva I-PESSOA
mora O
em O
Brasília B-LOCAL
. O
"""


def test_it_imports_a_conll_document_as_reviewed_accepted_annotations(tmp_path, db, capsys):
    (tmp_path / "doc.conll").write_text(CONLL, encoding="utf-8")
    call_command("import_conll", str(tmp_path), "--reviewed")
    document = Document.objects.get()
    assert document.status == "ready" and document.is_reviewed and document.page_count == 1
    assert accepted_spans(document=document) == [(1, 3, "ORGANIZACAO"), (5, 8, "PESSOA"), (10, 11, "LOCAL")]
    assert AnnotationEvent.objects.filter(action="import").count() == 3
    assert capsys.readouterr().out.startswith(f"{document.pk}\tready\t3 entities")


def test_importing_the_same_file_twice_does_not_duplicate(tmp_path, db):
    (tmp_path / "doc.conll").write_text(CONLL, encoding="utf-8")
    call_command("import_conll", str(tmp_path / "doc.conll"))
    call_command("import_conll", str(tmp_path / "doc.conll"))
    assert Document.objects.count() == 1 and Annotation.objects.count() == 3


def test_a_malformed_file_is_reported_and_leaves_nothing_behind(tmp_path, db, capsys):
    (tmp_path / "bad.conll").write_text("Ministério B-ORG\nPúblico\n", encoding="utf-8")
    (tmp_path / "good.conll").write_text(CONLL, encoding="utf-8")
    with pytest.raises(CommandError):
        call_command("import_conll", str(tmp_path))
    out = capsys.readouterr().out
    assert "bad.conll: line 2" in out
    assert Document.objects.count() == 1  # the good file still went in


def test_lener_br_documents_round_trip_through_pdf(lener, db):
    files = sorted((lener / "dev").glob("*.conll"))[:2]
    call_command("import_conll", *map(str, files), "--reviewed")
    assert Document.objects.filter(status="ready", reviewed_at__isnull=False).count() == 2


def test_a_token_with_a_character_the_pdf_font_lacks_is_imported_as_drawn(tmp_path, db):
    """Real corpora hold mis-decoded characters (LeNER-Br's '\\x91acesso'): the document is imported with the
    word as its PDF carries it, not refused; a NUL still is."""
    from django.core.management import call_command

    from documents.models import Document

    good = tmp_path / "good.conll"
    good.write_text("O O\n\x91acesso O\nao O\nSTF B-ORGANIZACAO\n", encoding="utf-8")
    call_command("import_conll", str(good), "--reviewed")
    document = Document.objects.get(original_name="good.pdf")
    assert document.status == Document.Status.READY and document.annotations.count() == 1

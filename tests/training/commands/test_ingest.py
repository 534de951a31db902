import pytest
from django.core.management import CommandError, call_command

from documents.models import Document


def test_ingest_sync_prints_the_id_and_final_status_of_each_file(tmp_path, db, pdf_bytes, capsys):
    (tmp_path / "a.pdf").write_bytes(pdf_bytes)
    call_command("ingest", str(tmp_path / "a.pdf"), "--sync")
    document = Document.objects.get()
    assert capsys.readouterr().out == f"{document.pk}\tready\n"
    assert document.pages.count() == 1


def test_ingest_without_sync_queues_the_work_for_a_worker(tmp_path, db, pdf_bytes, capsys, run_worker,
                                                          django_capture_on_commit_callbacks):
    (tmp_path / "a.pdf").write_bytes(pdf_bytes)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("ingest", str(tmp_path / "a.pdf"))
    document = Document.objects.get()
    assert capsys.readouterr().out == f"{document.pk}\tuploaded\n"
    assert run_worker() == 1
    document.refresh_from_db()
    assert document.status == "ready"


def test_ingest_reports_every_bad_file_and_exits_non_zero(tmp_path, db, pdf_bytes, capsys):
    (tmp_path / "good.pdf").write_bytes(pdf_bytes)
    (tmp_path / "empty.pdf").write_bytes(b"")
    (tmp_path / "cut.pdf").write_bytes(pdf_bytes[:300])
    with pytest.raises(CommandError):
        call_command("ingest", *(str(tmp_path / n) for n in ("good.pdf", "empty.pdf", "cut.pdf", "gone.pdf")),
                     "--sync")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("\tready")
    assert lines[1].startswith("-\tfailed\t") and "empty" in lines[1]
    assert lines[2].startswith("-\tfailed\t") and "truncated" in lines[2]
    assert lines[3].startswith("-\tfailed\t")
    assert Document.objects.count() == 1


def test_a_folder_is_extracted_in_parallel_and_one_bad_pdf_fails_alone(tmp_path, db, make_pdf, capsys):
    import pymupdf

    scan = pymupdf.open()
    scan.new_page().draw_rect(pymupdf.Rect(10, 10, 100, 100))
    (tmp_path / "scan.pdf").write_bytes(scan.tobytes())
    names = []
    for n in range(4):
        (tmp_path / f"doc{n}.pdf").write_bytes(make_pdf([[f"palavra{n}", "e", "mais", "."]], repeat=n + 1))
        names.append(f"doc{n}.pdf")
    names.insert(2, "scan.pdf")
    with pytest.raises(CommandError, match="1 of 5"):
        call_command("ingest", *(str(tmp_path / n) for n in names), "--sync", "--processes", "2")
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    documents = {d.original_name: d for d in Document.objects.all()}
    assert [int(line[0]) for line in lines] == [documents[n].pk for n in names]  # one line per file, in order
    assert [line[1] for line in lines] == ["ready", "ready", "failed", "ready", "ready"]
    assert "text layer" in lines[2][2] and "text layer" in documents["scan.pdf"].error
    assert documents["doc3.pdf"].word_count == 16 and documents["doc3.pdf"].pages.count() == 1

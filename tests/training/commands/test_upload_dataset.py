import pytest
from django.core.management import CommandError, call_command

from tests.training.excel_files import text_rows, token_rows, xlsx
from training.models import Dataset


def test_it_stores_a_workbook_with_the_task_from_its_columns_and_prints_id_and_hash(tmp_path, db, capsys):
    path = tmp_path / "ner.xlsx"
    path.write_bytes(xlsx(token_rows(4)))
    call_command("upload_dataset", str(path))
    fields = capsys.readouterr().out.strip().split("\t")
    dataset = Dataset.objects.get()
    assert fields[:3] == [str(dataset.pk), dataset.sha256, "created"]
    assert dataset.task == "token_classification" and dataset.name == "ner.xlsx"
    call_command("upload_dataset", str(path))
    assert capsys.readouterr().out.split("\t")[2] == "existing" and Dataset.objects.count() == 1


def test_a_refusal_lists_every_problem_and_stores_nothing(tmp_path, db):
    path = tmp_path / "ruim.xlsx"
    path.write_bytes(xlsx(text_rows(2) + [[None, None], ["x", None]]))
    with pytest.raises(CommandError) as refused:
        call_command("upload_dataset", str(path))
    message = str(refused.value)
    assert "2 problem(s)" in message and "row 4: Empty row." in message
    assert "row 5, column label (B5): Missing value." in message
    assert not Dataset.objects.exists()


def test_a_task_that_does_not_match_the_columns_is_refused(tmp_path, db):
    path = tmp_path / "classes.xlsx"
    path.write_bytes(xlsx(text_rows(2)))
    with pytest.raises(CommandError, match="Missing column “tokens”"):
        call_command("upload_dataset", str(path), "--task", "token_classification")


def test_the_command_exits_non_zero_without_a_traceback(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "notas.txt"
    path.write_text("não é planilha")
    result = subprocess.run([sys.executable, "manage.py", "upload_dataset", str(path)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0 and "Only .xlsx" in result.stderr and "Traceback" not in result.stderr

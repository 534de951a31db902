"""Excel validation: every problem with its row and column, found before anything is stored."""

import pytest

from tests.training.excel_files import A_DATE, bomb, text_rows, token_rows, xlsx
from training.interchange.excel import excel_read


def _problems(data: bytes, name: str = "dados.xlsx", **kwargs) -> list[dict]:
    content = excel_read(data=data, name=name, **kwargs)
    assert not content.ok
    return content.problem_dicts()


def test_a_text_classification_sheet_gives_rows_and_a_preview():
    content = excel_read(data=xlsx(text_rows(30)), name="classes.xlsx")
    assert content.ok and content.task == "text_classification" and content.sheet == "dados"
    assert len(content.rows) == 30 and len(content.preview) == 20
    assert content.preview[0] == {"row": 2, "text": content.rows[0]["text"], "label": "SENTENCA"}


def test_the_task_follows_from_the_columns_whatever_their_case_and_order():
    rows = [["Tags", "TOKENS"]] + [[tags, tokens] for tokens, tags in token_rows()[1:]]
    content = excel_read(data=xlsx(rows), name="ner.xlsx")
    assert content.ok and content.task == "token_classification"
    assert content.rows[0]["tokens"][:2] == ["João", "Silva"] and content.rows[0]["tags"][0] == "B-PESSOA"


def test_missing_columns_are_named():
    problems = _problems(xlsx([["texto", "classe"], ["a", "b"]]))
    assert problems[0]["row"] == 1 and "text" in problems[0]["message"] and "tokens" in problems[0]["message"]
    problems = _problems(xlsx([["text", "classe"], ["a", "b"]]), task="text_classification")
    assert [(p["row"], p["column"]) for p in problems] == [(1, "label")]


def test_wrong_types_are_reported_with_row_and_cell():
    rows = text_rows(3) + [[12345, "SENTENCA"], ["um texto", A_DATE], ["outro texto", 3.5]]
    problems = _problems(xlsx(rows))
    assert [(p["row"], p["column"], p["cell"]) for p in problems] == [
        (5, "text", "A5"), (6, "label", "B6"), (7, "label", "B7")]
    assert "expected text, found number" in problems[0]["message"]
    assert "found date" in problems[1]["message"]


def test_whole_number_labels_are_text_enough():
    content = excel_read(data=xlsx([["text", "label"], ["bom", 1], ["ruim", 0]]), name="x.xlsx")
    assert content.ok and [r["label"] for r in content.rows] == ["1", "0"]


def test_empty_rows_inside_the_data_are_refused_but_trailing_ones_are_not():
    rows = text_rows(2) + [[None, None], ["texto depois", "SENTENCA"], [None, None], [None, None]]
    problems = _problems(xlsx(rows))
    assert [(p["row"], p["message"]) for p in problems] == [(4, "Empty row.")]


def test_a_missing_value_in_a_row_is_refused():
    problems = _problems(xlsx(text_rows(2) + [["só o texto", None]]))
    assert [(p["row"], p["column"], p["message"]) for p in problems] == [(4, "label", "Missing value.")]


def test_token_and_tag_counts_must_match():
    rows = token_rows(2) + [["um dois três", "O O"]]
    problems = _problems(xlsx(rows))
    assert [(p["row"], p["column"], p["cell"]) for p in problems] == [(4, "tags", "B4")]
    assert "3 tokens but 2 tags" in problems[0]["message"]


def test_tags_that_are_not_bio_are_refused():
    rows = token_rows(1) + [["Maria mora em Recife", "PESSOA O O B-LOCAL"], ["Maria mora em Recife", "I-PESSOA O O O"],
                            ["Maria Silva foi", "B-PESSOA I-LOCAL O"]]
    problems = _problems(xlsx(rows))
    assert [p["row"] for p in problems] == [3, 4, 5]
    assert "“PESSOA” (tag 1) is not O, B-TYPE or I-TYPE" in problems[0]["message"]
    assert "does not continue a PESSOA entity" in problems[1]["message"]
    assert "does not continue a LOCAL entity" in problems[2]["message"]


def test_every_problem_of_the_sheet_is_listed_at_once():
    rows = token_rows(1) + [["a b", "O"], [None, None], ["c", "X"], [7, "O"]]
    assert [p["row"] for p in _problems(xlsx(rows))] == [3, 4, 5, 6]


def test_an_unknown_sheet_is_refused_naming_the_sheets_there_are():
    problems = _problems(xlsx(text_rows(2), extra_sheets=("outra",)), sheet="Planilha1")
    assert "Unknown sheet “Planilha1”; the workbook has: dados, outra." == problems[0]["message"]
    assert excel_read(data=xlsx(text_rows(2), extra_sheets=("outra",)), name="x.xlsx", sheet="dados").ok


def test_a_file_that_is_not_xlsx_is_refused():
    assert "Only .xlsx" in _problems(b"text,label\na,b\n", name="dados.csv")[0]["message"]
    assert "not a zip archive" in _problems(b"text,label\na,b\n", name="dados.xlsx")[0]["message"]


def test_a_file_over_the_size_limit_is_refused(settings):
    settings.DOCLOOP_MAX_DATASET_MB = 0
    assert "over the limit of 0 MB" in _problems(xlsx(text_rows(2)))[0]["message"]


def test_a_zip_bomb_is_refused_before_it_is_unzipped(settings):
    problems = _problems(bomb(xlsx(text_rows(2)), megabytes=30))
    assert "possible zip bomb" in problems[0]["message"]
    settings.DOCLOOP_MAX_DATASET_EXPANDED_MB = 1
    problems = _problems(bomb(xlsx(text_rows(2)), megabytes=2))
    assert "over the limit of 1 MB" in problems[0]["message"] and "zip bomb" in problems[0]["message"]


def test_formulas_instead_of_values_are_refused():
    rows = text_rows(2) + [["=A2&A3", "SENTENCA"]]
    problems = _problems(xlsx(rows))
    assert [(p["row"], p["column"], p["cell"]) for p in problems] == [(4, "text", "A4")]
    assert "formula" in problems[0]["message"]


@pytest.mark.parametrize("rows", [[["text", "label"]], []])
def test_a_sheet_without_data_is_refused(rows):
    assert _problems(xlsx(rows))

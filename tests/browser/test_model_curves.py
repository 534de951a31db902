"""/training/models/ in Debian's chromium (issue 19): the learning curve of each label is a chart of its own
that fits its column, side by side without overlapping at 1280 px and one per row on a phone; versions the
gate rejected are drawn as rejected."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)",
                allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402

from tests.training.test_model_curves import LABELS  # noqa: E402
from tests.training.test_model_curves import versions as make_versions  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def _overlap(a: dict, b: dict) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


def _charts(page, count: int) -> list[dict]:
    figures = page.locator("#label-curves figure.curve")
    expect(figures).to_have_count(count)
    return [figures.nth(i).bounding_box() for i in range(count)]


def _open(page, log_in, reviewer, width: int, height: int) -> dict:
    log_in(reviewer)
    page.set_viewport_size({"width": width, "height": height})
    page.goto("/training/models/")
    card = page.locator("#label-curves").bounding_box()
    assert card is not None
    return card


def test_the_curves_sit_side_by_side_without_overlapping_at_1280_px(page, log_in, reviewer):
    make_versions([0.42, 0.55, 0.31, 0.63, 0.71], gated=(3,))
    card = _open(page, log_in, reviewer, 1280, 800)
    boxes = _charts(page, len(LABELS))
    assert len({round(b["y"]) for b in boxes}) == 1, "three charts fit one row at 1280 px"
    for i, box in enumerate(boxes):
        assert box["width"] >= 280, f"chart {i} is too small to read: {box}"
        assert card["x"] <= box["x"] and box["x"] + box["width"] <= card["x"] + card["width"], "inside its card"
        assert not any(_overlap(box, other) for other in boxes[i + 1:])
    # Each chart's own drawing stays inside its figure (the old 248 px svg spilled out of a narrower column).
    for i in range(len(LABELS)):
        svg = page.locator("#label-curves figure.curve svg").nth(i).bounding_box()
        assert boxes[i]["x"] <= svg["x"] and svg["x"] + svg["width"] <= boxes[i]["x"] + boxes[i]["width"] + 0.5
    # v3 was rejected by the gate: a red cross off the line in every chart, its reason in its tooltip.
    crosses = page.locator("#label-curves path.mark.rejected[data-version='3']")
    expect(crosses).to_have_count(len(LABELS))
    expect(crosses.first.locator("title")).to_have_text("v3 · rejected: worse than the active version · F1 0.310")
    assert page.locator("#label-curves circle.mark[data-version='3']").count() == 0
    points = page.locator("#label-curves polyline.line").first.get_attribute("points").split()
    assert len(points) == 4
    assert page.console_errors == []


def test_on_a_phone_the_curves_are_one_per_row_and_fit_the_screen(page, log_in, reviewer):
    make_versions([0.42, 0.55, 0.31, 0.63, 0.71], gated=(3,))
    _open(page, log_in, reviewer, 390, 844)
    boxes = _charts(page, len(LABELS))
    assert len({round(b["x"]) for b in boxes}) == 1, "one chart per row"
    for i, box in enumerate(boxes):
        assert 0 <= box["x"] and box["x"] + box["width"] <= 390, f"chart {i} leaves the screen: {box}"
        assert box["width"] >= 250
        assert not any(_overlap(box, other) for other in boxes[i + 1:])
    tick = page.locator("#label-curves figure.curve text.tick").first.bounding_box()
    assert tick["height"] >= 8, "axis labels stay legible"
    assert page.console_errors == []

"""The models page's learning curve per label (issue 19): training.selectors._curves through model_history."""

from __future__ import annotations

import pytest
from django.urls import reverse

from training.models import ModelVersion, TrainingRun
from training.selectors import CHART, model_history

LABELS = ["LOCAL", "ORGANIZACAO", "PESSOA"]


def versions(f1s: list[float], *, gated: tuple[int, ...] = ()) -> list[ModelVersion]:
    """Token-classification versions v1..vN, label i of version n scoring f1s[n-1] - i/10; `gated` numbers were
    rejected by the gate."""
    made = []
    for number, f1 in enumerate(f1s, start=1):
        run = TrainingRun.objects.create(task="token_classification", base_model="m", status="succeeded")
        made.append(ModelVersion.objects.create(
            task="token_classification", number=number, run=run, artefact=f"models/v{number}",
            gate_status="rejected" if number in gated else "passed",
            metrics={"f1": f1, "per_label": {label: {"f1": round(f1 - i / 10, 3)} for i, label in enumerate(LABELS)}}))
    return made


@pytest.mark.django_db
def test_each_label_has_its_own_chart_with_rejected_versions_off_the_line():
    versions([0.5, 0.6, 0.3, 0.7], gated=(3,))
    curves = model_history()["curves"]
    assert [c["label"] for c in curves["labels"]] == LABELS
    local = curves["labels"][0]
    assert [(m["number"], bool(m["rejected"])) for m in local["marks"]] == [(1, False), (2, False), (3, True),
                                                                         (4, False)]
    assert local["marks"][2]["rejected"] == "rejected: worse than the active version"
    assert len(local["points"].split()) == 3 and local["last"] == 0.7 and local["rejected"] == 1
    # Inside the chart's plot: F1 1 at the top, 0 at the bottom, the oldest version at the left.
    top, bottom = CHART["top"], CHART["height"] - CHART["bottom"]
    assert all(top <= m["y"] <= bottom and CHART["left"] <= m["x"] <= CHART["width"] - CHART["right"]
               for m in local["marks"])
    assert local["marks"][3]["y"] < local["marks"][0]["y"]  # 0.7 is drawn above 0.5
    assert [t["text"] for t in curves["axis"]["x_ticks"]] == ["v1", "v2", "v3", "v4"]


@pytest.mark.django_db
def test_many_versions_name_at_most_eight_on_the_axis_the_newest_included():
    versions([0.1 + i / 40 for i in range(20)])
    ticks = [t["text"] for t in model_history()["curves"]["axis"]["x_ticks"]]
    assert len(ticks) <= 8 and ticks[-1] == "v20"
    xs = [t["x"] for t in model_history()["curves"]["axis"]["x_ticks"]]
    assert len({round(b - a, 1) for a, b in zip(xs, xs[1:], strict=False)}) == 1  # evenly spaced


@pytest.mark.django_db
def test_the_models_page_draws_a_scalable_chart_per_label_and_marks_rejected_versions(client, reviewer):
    versions([0.5, 0.6, 0.3], gated=(3,))
    client.force_login(reviewer)
    body = client.get(reverse("training:models")).content.decode()
    assert body.count('<figure class="curve"') == 3 and 'width="248"' not in body
    assert body.count('class="mark rejected" data-version="3"') == 3 and 'id="curves-gated"' in body
    assert "v3 · rejected: worse than the active version · F1 0.300" in body


@pytest.mark.django_db
def test_no_versions_means_no_curves(client, reviewer):
    client.force_login(reviewer)
    body = client.get(reverse("training:models")).content.decode()
    assert model_history()["curves"] == {} and 'id="label-curves"' not in body

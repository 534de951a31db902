from training.ml.metrics import span_scores


def test_scores_count_only_exact_boundaries_and_types():
    gold = [[(0, 2, "PESSOA"), (5, 6, "LOCAL")], [(1, 3, "TEMPO")]]
    predicted = [[(0, 2, "PESSOA"), (5, 7, "LOCAL")], [(1, 3, "LOCAL")]]
    scores = span_scores(gold, predicted)
    assert scores["precision"] == 1 / 3
    assert scores["recall"] == 1 / 3
    assert round(scores["f1"], 6) == round(1 / 3, 6)
    assert scores["per_label"]["PESSOA"]["f1"] == 1.0
    assert scores["per_label"]["TEMPO"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_no_predictions_and_no_gold_score_zero_without_dividing_by_zero():
    assert span_scores([[]], [[]])["f1"] == 0.0

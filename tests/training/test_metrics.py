from annotation.bio import bio_to_spans, spans_to_bio
from training.metrics import span_scores


def test_bio_round_trips_through_spans():
    tags = ["B-PESSOA", "I-PESSOA", "O", "B-LOCAL", "B-LOCAL", "I-LOCAL", "O"]
    spans = bio_to_spans(tags)
    assert spans == [(0, 2, "PESSOA"), (3, 4, "LOCAL"), (4, 6, "LOCAL")]
    assert spans_to_bio(spans, len(tags)) == tags


def test_a_stray_inside_tag_starts_an_entity_as_conlleval_does():
    assert bio_to_spans(["O", "I-TEMPO", "I-TEMPO", "I-LOCAL"]) == [(1, 3, "TEMPO"), (3, 4, "LOCAL")]


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

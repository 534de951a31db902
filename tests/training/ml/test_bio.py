from training.ml.bio import bio_to_spans, spans_to_bio


def test_bio_round_trips_through_spans():
    tags = ["B-PESSOA", "I-PESSOA", "O", "B-LOCAL", "B-LOCAL", "I-LOCAL", "O"]
    spans = bio_to_spans(tags)
    assert spans == [(0, 2, "PESSOA"), (3, 4, "LOCAL"), (4, 6, "LOCAL")]
    assert spans_to_bio(spans, len(tags)) == tags


def test_a_stray_inside_tag_starts_an_entity_as_conlleval_does():
    assert bio_to_spans(["O", "I-TEMPO", "I-TEMPO", "I-LOCAL"]) == [(1, 3, "TEMPO"), (3, 4, "LOCAL")]

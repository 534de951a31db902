import pytest

from training.ml.data import split_documents


def test_about_the_asked_share_of_words_is_held_out():
    sizes = [3000, 5600, 6800, 3500, 7000, 9800, 2800, 5300]
    for seed in range(20):
        train, held = split_documents(sizes=sizes, eval_fraction=0.1, seed=seed)
        assert sorted(train + held) == list(range(8)) and held and train
        assert abs(sum(sizes[i] for i in held) - 0.1 * sum(sizes)) < 0.1 * sum(sizes)


def test_the_split_is_the_same_for_the_same_seed():
    sizes = [100, 200, 300, 400, 500]
    assert split_documents(sizes=sizes, eval_fraction=0.2, seed=3) == split_documents(sizes=sizes,
                                                                                     eval_fraction=0.2, seed=3)


def test_when_every_document_is_long_the_shortest_is_held_out():
    assert split_documents(sizes=[900, 100_000, 800], eval_fraction=0.01, seed=1) == ([0, 1], [2])


def test_one_document_is_not_enough():
    with pytest.raises(ValueError, match="at least 2"):
        split_documents(sizes=[10], eval_fraction=0.1, seed=1)

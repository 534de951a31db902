import random

from training.ml.windows import split_windows


def _check(words, ends, lengths, budget):
    windows = split_windows(words, ends, lengths, budget)
    assert windows[0][0] == 0 and windows[-1][1] == len(words)
    for (_s1, e1), (s2, _e2) in zip(windows, windows[1:], strict=False):
        assert e1 == s2  # contiguous: no word dropped or repeated
    for s, e in windows:
        assert e > s
        assert e - s == 1 or sum(min(n, budget) for n in lengths[s:e]) <= budget
    return windows


def test_windows_cover_every_word_within_the_budget():
    rng = random.Random(7)
    words = [rng.choice(["a", "bb.", "ccc", "d;", "e"]) for _ in range(5000)]
    ends = [rng.random() < 0.1 for _ in words]
    lengths = [rng.randint(1, 6) for _ in words]
    for budget in (8, 30, 126, 510):
        _check(words, ends, lengths, budget)


def test_windows_cut_at_sentence_ends_when_they_can():
    words = "um dois três . quatro cinco seis sete".split()
    windows = _check(words, [False] * len(words), [1] * len(words), 6)
    assert windows[0] == (0, 4)


def test_a_word_longer_than_the_budget_gets_a_window_of_its_own():
    words = ["a", "supercalifragilistic", "b"]
    assert _check(words, [False] * 3, [1, 50, 1], 10) == [(0, 1), (1, 2), (2, 3)]

"""The real packaged MiniLM on tiny data: loss falls, the artefact reloads, the model learns the pattern."""

import random

import pytest
import torch
from django.conf import settings
from transformers import AutoModelForTokenClassification, AutoTokenizer

from training.ml.bio import bio_to_spans
from training.ml.token_classification import (
    TokenDocument,
    TokenPredictor,
    TokenTrainConfig,
    encode_document,
    evaluate_saved,
    train_token_classifier,
)

NAMES = ["João Silva", "Maria Souza", "Pedro Santos", "Ana Lima", "Carlos Pereira", "Beatriz Costa"]
CITIES = ["Brasília", "Recife", "Curitiba", "Salvador", "Manaus", "Goiânia"]


def _doc(rng: random.Random, n: int) -> TokenDocument:
    words, tags, ends = [], [], []
    for _ in range(n):
        name, city = rng.choice(NAMES).split(), rng.choice(CITIES)
        sentence = ["O", "réu", *name, "mora", "em", city, "."]
        sentence_tags = ["O", "O", "B-PESSOA", "I-PESSOA", "O", "O", "B-LOCAL", "O"]
        words += sentence
        tags += sentence_tags
        ends += [False] * (len(sentence) - 1) + [True]
    return TokenDocument(words=words, line_ends=ends, tags=tags)


@pytest.mark.slow
def test_fine_tuning_learns_the_entities_and_saves_a_loadable_model(tmp_path):
    rng = random.Random(0)
    train, held_out = [_doc(rng, 30), _doc(rng, 30)], [_doc(rng, 10)]
    epochs_seen = []
    config = TokenTrainConfig(base_model=settings.DOCLOOP_BASE_MODEL, output_dir=str(tmp_path / "model"),
                              entity_types=["PESSOA", "LOCAL"], epochs=6, batch_size=4, learning_rate=3e-4,
                              max_length=32, seed=1, patience=0)
    result = train_token_classifier(config, train, held_out, on_epoch=epochs_seen.append)

    assert [e["epoch"] for e in epochs_seen] == [1, 2, 3, 4, 5, 6]
    assert epochs_seen[-1]["train_loss"] < epochs_seen[0]["train_loss"] / 2
    assert result["final"]["f1"] > 0.8  # computed from the held-out predictions

    model = AutoModelForTokenClassification.from_pretrained(tmp_path / "model")
    assert model.config.id2label[1] == "B-LOCAL"
    predictor = TokenPredictor(tmp_path / "model")
    doc = held_out[0]
    tags, scores = predictor.tags(doc.words, doc.line_ends)
    assert len(tags) == len(doc.words) and all(0 <= s <= 1 for s in scores)
    assert len(set(bio_to_spans(tags)) & set(bio_to_spans(doc.tags))) >= 8


def _tiny(tmp_path, name: str, **options) -> TokenTrainConfig:
    return TokenTrainConfig(base_model=settings.DOCLOOP_BASE_MODEL, output_dir=str(tmp_path / name),
                            entity_types=["PESSOA", "LOCAL"], batch_size=4, learning_rate=3e-4, max_length=32,
                            seed=3, **{"epochs": 2, "patience": 0, "refit": False, **options})


def _tiny_data():
    rng = random.Random(5)
    return [_doc(rng, 6), _doc(rng, 6)], [_doc(rng, 3)]


class Crash(Exception):
    pass


def test_a_run_resumed_from_its_epoch_checkpoint_ends_as_an_uninterrupted_one(tmp_path):
    train, held_out = _tiny_data()
    whole = train_token_classifier(_tiny(tmp_path, "whole"), train, held_out)

    checkpoints = tmp_path / "checkpoints"

    def crash_after_first(info):
        assert info["files"][-1] == "latest.json"
        raise Crash

    with pytest.raises(Crash):
        train_token_classifier(_tiny(tmp_path, "crashed"), train, held_out, checkpoint_dir=checkpoints,
                               on_checkpoint=crash_after_first)
    seen = []
    resumed = train_token_classifier(_tiny(tmp_path, "resumed"), train, held_out, checkpoint_dir=checkpoints,
                                     on_epoch=seen.append)
    assert [e["epoch"] for e in seen] == [2]  # epoch 1 came from the checkpoint
    assert [e["epoch"] for e in resumed["history"]] == [1, 2]
    for a, b in zip(whole["history"], resumed["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["f1"] == pytest.approx(b["f1"], abs=1e-6)
    assert sorted(p.name for p in checkpoints.iterdir()) == [f"best-00{resumed['best_epoch']}.pt", "latest.json",
                                                             "search-002.pt"]


def test_a_cuda_out_of_memory_error_halves_the_batch_and_accumulates(tmp_path, monkeypatch, caplog):
    from training.ml import fit

    real, calls = fit._micro_step, []

    def once_out_of_memory(model, batch, **kwargs):
        calls.append(len(batch["input_ids"]))
        if len(calls) == 1:  # the only mock: one step runs out of GPU memory
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, batch, **kwargs)

    monkeypatch.setattr(fit, "_micro_step", once_out_of_memory)
    train, held_out = _tiny_data()
    steps = []
    result = train_token_classifier(_tiny(tmp_path, "oom", epochs=1), train, held_out, on_step=steps.append)
    assert result["accumulation"] == 2 and steps[-1]["accumulation"] == 2
    assert calls[:3] == [4, 2, 2]  # the failed batch of 4 again, in two halves of 2
    assert [s["step"] for s in steps] == [1, 2] and steps[0]["total_steps"] == 2  # every step counted once
    assert "out of memory" in caplog.text
    assert result["final"]["train_loss"] > 0


def _weights(directory) -> dict:
    return AutoModelForTokenClassification.from_pretrained(directory).state_dict()


def test_refit_trains_a_fresh_model_on_training_and_validation_documents_for_the_best_epoch_count(tmp_path):
    train, held_out = _tiny_data()
    kept = train_token_classifier(_tiny(tmp_path, "kept", epochs=6), train, held_out)
    steps = []
    refit = train_token_classifier(_tiny(tmp_path, "refit", epochs=6, refit=True, refit_continue=0), train, held_out,
                                   on_step=steps.append)

    # The search is the same run; the refit then trains for exactly the epoch count it chose.
    assert [e["f1"] for e in refit["history"]] == pytest.approx([e["f1"] for e in kept["history"]], abs=1e-6)
    assert refit["refit_epochs"] == refit["best_epoch"] == kept["best_epoch"] >= 1 and kept["refit_epochs"] == 0
    refit_steps = [s for s in steps if s["phase"] == "refit"]
    tokenizer = AutoTokenizer.from_pretrained(settings.DOCLOOP_BASE_MODEL)
    windows = sum(len(encode_document(tokenizer, doc, max_length=32)) for doc in [*train, *held_out])
    assert windows > refit["train_windows"]
    assert len(refit_steps) == refit["best_epoch"] * -(-windows // 4) == refit_steps[-1]["total_steps"]
    assert {s["epochs"] for s in refit_steps} == {refit["best_epoch"]}
    # The reported metrics stay the chosen epoch's, measured before the validation document was learnt...
    without_time = lambda record: {k: v for k, v in record.items() if k != "seconds"}  # noqa: E731
    assert without_time(refit["final"]) == without_time(kept["final"])
    # ...and the saved model is another one, which has learnt the validation document.
    assert any(not torch.equal(a, b) for a, b in zip(_weights(tmp_path / "kept").values(),
                                                     _weights(tmp_path / "refit").values(), strict=True))
    assert evaluate_saved(tmp_path / "refit", held_out)["loss"] < evaluate_saved(tmp_path / "kept", held_out)["loss"]
    meta = (tmp_path / "refit" / "docloop.json").read_text()
    assert f'"refit_epochs": {refit["best_epoch"]}' in meta


def test_a_run_killed_during_its_refit_resumes_the_refit_and_ends_as_an_uninterrupted_one(tmp_path):
    train, held_out = _tiny_data()
    options = {"epochs": 2, "refit": True}
    whole = train_token_classifier(_tiny(tmp_path, "whole", **options), train, held_out)
    assert whole["refit_epochs"] == whole["best_epoch"]
    checkpoints = tmp_path / "checkpoints"

    def crash_in_refit(info):
        if info["phase"] == "refit":
            raise Crash

    with pytest.raises(Crash):
        train_token_classifier(_tiny(tmp_path, "crashed", **options), train, held_out, checkpoint_dir=checkpoints,
                               on_checkpoint=crash_in_refit)
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest.json", "refit-001.pt"]
    seen, steps = [], []
    resumed = train_token_classifier(_tiny(tmp_path, "resumed", **options), train, held_out,
                                     checkpoint_dir=checkpoints, on_epoch=seen.append, on_step=steps.append)
    assert seen == []  # the search was over: nothing evaluated again
    assert {s["phase"] for s in steps} == ({"refit"} if whole["best_epoch"] > 1 else set())
    assert [e["f1"] for e in resumed["history"]] == pytest.approx([e["f1"] for e in whole["history"]], abs=1e-6)
    for a, b in zip(_weights(tmp_path / "whole").values(), _weights(tmp_path / "resumed").values(), strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_a_continuing_refit_starts_from_the_best_epoch_and_runs_only_its_few_epochs(tmp_path):
    """refit_continue: the refit picks up the best epoch's weights (at the learning rate the search's schedule
    had reached) for at most that many epochs over training + validation windows, instead of retraining a
    fresh model for the best epoch count."""
    from training.ml.fit import _continue_config, refit_continue_epochs

    train, held_out = _tiny_data()
    kept = train_token_classifier(_tiny(tmp_path, "kept", epochs=4), train, held_out)
    steps = []
    continued = train_token_classifier(_tiny(tmp_path, "continued", epochs=4, refit=True, refit_continue=1), train,
                                       held_out, on_step=steps.append)
    assert [e["f1"] for e in continued["history"]] == pytest.approx([e["f1"] for e in kept["history"]], abs=1e-6)
    assert continued["refit_epochs"] == 1
    tokenizer = AutoTokenizer.from_pretrained(settings.DOCLOOP_BASE_MODEL)
    windows = sum(len(encode_document(tokenizer, doc, max_length=32)) for doc in [*train, *held_out])
    assert len([s for s in steps if s["phase"] == "refit"]) == -(-windows // 4)  # one epoch of all windows
    # It learnt the validation document on top of the kept weights.
    assert evaluate_saved(tmp_path / "continued", held_out)["loss"] < evaluate_saved(tmp_path / "kept", held_out)["loss"]

    config = _tiny(tmp_path, "c", epochs=20, warmup_ratio=0.1, refit_continue=3)
    assert refit_continue_epochs(config, best_epoch=2) == 2 and refit_continue_epochs(config, best_epoch=15) == 3
    assert refit_continue_epochs(_tiny(tmp_path, "d", refit_continue=0), best_epoch=5) == 0
    # The schedule: warmup over 2 epochs, then linear decay to 0 at epoch 20 (floored at a tenth).
    assert _continue_config(config, best_epoch=1).learning_rate == pytest.approx(config.learning_rate * 0.5)
    assert _continue_config(config, best_epoch=11).learning_rate == pytest.approx(config.learning_rate * 0.5)
    assert _continue_config(config, best_epoch=20).learning_rate == pytest.approx(config.learning_rate * 0.1)
    assert _continue_config(config, best_epoch=11).warmup_ratio == 0.0 and config.warmup_ratio == 0.1


def test_a_budget_of_optimizer_steps_shrinks_the_epochs_and_the_schedule_with_them(tmp_path):
    """max_steps: on many windows the planned epochs shrink to fit the budget (time follows steps), and the
    learning-rate schedule spans the planned epochs, so it still decays to zero within them."""
    from types import SimpleNamespace

    from training.ml.fit import planned_epochs

    assert planned_epochs(SimpleNamespace(epochs=20, max_steps=1000), 119) == 8  # ten LeNER-Br documents
    assert planned_epochs(SimpleNamespace(epochs=20, max_steps=1000), 7) == 20  # one short document
    assert planned_epochs(SimpleNamespace(epochs=20, max_steps=1000), 5000) == 1  # never fewer than one
    assert planned_epochs(SimpleNamespace(epochs=20, max_steps=0), 5000) == 20  # 0: no budget

    train, held_out = _tiny_data()
    tokenizer = AutoTokenizer.from_pretrained(settings.DOCLOOP_BASE_MODEL)
    per_epoch = -(-sum(len(encode_document(tokenizer, doc, max_length=32)) for doc in train) // 4)
    steps = []
    result = train_token_classifier(_tiny(tmp_path, "budget", epochs=6, max_steps=2 * per_epoch + 1), train,
                                    held_out, on_step=steps.append)
    assert result["epochs_planned"] == 2 and len(result["history"]) == 2
    assert len(steps) == steps[-1]["total_steps"] == 2 * per_epoch
    assert {s["epochs"] for s in steps} == {2}


def test_a_floor_of_epochs_lets_the_steps_grow_past_the_budget_on_many_documents():
    """min_epochs: where the budget would plan fewer epochs than the floor, the floor wins (the steps grow with
    the documents); it never raises the epochs above `epochs`, and 0 leaves the budget alone."""
    from types import SimpleNamespace

    from training.ml.fit import planned_epochs

    def planned(steps_per_epoch, **config):
        return planned_epochs(SimpleNamespace(**{"epochs": 20, "max_steps": 1000, **config}), steps_per_epoch)

    assert planned(214, min_epochs=8) == 8  # twenty LeNER-Br documents: 4 by the budget alone
    assert planned(107, min_epochs=8) == 9  # ten: the budget already plans more than the floor
    assert planned(5000, min_epochs=8, epochs=5) == 5  # never more than `epochs`
    assert planned(214, min_epochs=0) == planned(214) == 4
    assert planned(214, min_epochs=8, max_steps=0) == 20  # no budget: the floor has nothing to lift


def test_early_stopping_does_not_trust_a_validation_set_with_few_entities(tmp_path):
    """Below min_validation_entities the held-out F1 is mostly noise: patience stops nothing, every planned
    epoch runs and the last one is kept (its metrics are the ones reported)."""
    from training.ml.token_classification import validation_entities

    train, held_out = _tiny_data()
    assert validation_entities(held_out) == 6  # three sentences, a person and a place each
    assert validation_entities([TokenDocument(["a", "b", "c"], [False, False, True], ["I-X", "I-X", "B-X"])]) == 2
    result = train_token_classifier(_tiny(tmp_path, "few", epochs=4, patience=1, min_validation_entities=7),
                                    train, held_out)
    assert result["validation_trusted"] is False and result["validation_entities"] == 6
    assert len(result["history"]) == 4 and result["best_epoch"] == 4 and not result["stopped_early"]
    assert result["final"] == result["history"][-1]
    trusted = train_token_classifier(_tiny(tmp_path, "enough", epochs=2, patience=1, min_validation_entities=6),
                                     train, held_out)
    assert trusted["validation_trusted"] is True
    assert trusted["best_epoch"] == max(trusted["history"], key=lambda e: e["f1"])["epoch"]

"""The one place where training hyperparameters get their defaults and bounds.

Forms, `manage.py train`, the services that validate a run and the training config all read these, so a
default changes here and nowhere else. Pure Python: importing it loads no ML library.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    default: int | float | bool
    low: int | float | bool
    high: int | float | bool
    type: type

    def check(self, value) -> bool:
        if self.type is bool:
            return isinstance(value, bool)
        return (isinstance(value, int | float) and not isinstance(value, bool)
                and self.low <= value <= self.high)


HYPERPARAMETERS: dict[str, Hyperparameter] = {h.name: h for h in (
    # The most epochs; early stopping (patience) usually ends the run sooner. The recipe (20 epochs at most,
    # 1e-4 with 10% warmup (3e-4 for entities: TASK_DEFAULTS), weight decay 0.01, patience 3 on validation F1,
    # then a refit on all documents) is compared with a vanilla Trainer run of 10 epochs at 1e-4 in
    # docs/performance.md (bench/recipe.py, bench/recipe_variants.py).
    Hyperparameter("epochs", 20, 1, 100, int),
    Hyperparameter("batch_size", 16, 1, 512, int),
    Hyperparameter("learning_rate", 1e-4, 1e-7, 1.0, float),
    # Window size in sub-tokens: 64 beat 128 on LeNER-Br (docs/performance.md).
    Hyperparameter("max_length", 64, 16, 4096, int),
    Hyperparameter("weight_decay", 0.01, 0.0, 1.0, float),
    Hyperparameter("warmup_ratio", 0.1, 0.0, 0.5, float),
    # Stop when the validation F1 has not improved for this many epochs (0: run every epoch).
    Hyperparameter("patience", 3, 0, 100, int),
    # Then train on the training and validation documents too, so the documents held out to choose the
    # epoch count are not lost to the final model (training.ml.fit).
    Hyperparameter("refit", True, False, True, bool),
    # >0: the refit continues from the best epoch's weights for at most this many epochs, at the learning
    # rate the schedule had reached there; 0: it trains a fresh model for the best epoch count again (twice
    # the time). Runs recorded before this existed keep 0 (migration training 0013).
    Hyperparameter("refit_continue", 2, 0, 100, int),
    # A budget in optimizer steps (0: off): where there are many windows the epochs shrink to fit it, the
    # learning-rate schedule with them, so time stops growing with the documents (training.ml.fit).
    Hyperparameter("max_steps", 1000, 0, 1_000_000, int),
    # The budget never plans fewer epochs than this (0: no floor): where documents are many, the steps grow
    # with them past `max_steps` rather than the search ending after a few epochs (training.ml.fit).
    Hyperparameter("min_epochs", 0, 0, 100, int),
    # Early stopping (patience > 0) trusts the validation documents only when they hold at least this many
    # entities (token classification): below, every planned epoch runs and the last is kept, since the F1 of
    # a few entities moves more from noise than from one epoch to the next.
    Hyperparameter("min_validation_entities", 50, 0, 1_000_000, int),
    # Self-training (token classification; training.ml.self_training): >0 adds documents nobody has reviewed
    # yet to the training documents (never to the validation ones), taught with the model's own predictions
    # of at least `weak_threshold` confidence, each word's loss counted `weak_weight` times a human label's;
    # their words stay within `weak_max_ratio` times the reviewed training words. 0: off.
    Hyperparameter("weak_weight", 0.0, 0.0, 1.0, float),
    Hyperparameter("weak_threshold", 0.9, 0.0, 1.0, float),
    Hyperparameter("weak_max_ratio", 1.0, 0.0, 100.0, float),
    # Share of the words held out (whole documents) for the per-epoch evaluation.
    Hyperparameter("eval_fraction", 0.1, 0.01, 0.9, float),
    Hyperparameter("seed", 42, 0, 2**31 - 1, int),
)}

DEFAULTS: dict[str, int | float | bool] = {name: h.default for name, h in HYPERPARAMETERS.items()}

# Where one task's measured best differs from the shared default. Token classification: 3e-4 had the best
# mean tuning-split F1 of 1e-4, 2e-4 and 3e-4 over N = 5 (two seeds) and N = 10 (+0.027 over 1e-4), in
# fewer epochs (docs/performance.md, "The learning rate"); document classification was not measured again
# and keeps 1e-4.
TASK_DEFAULTS: dict[str, dict[str, int | float | bool]] = {
    "token_classification": {"learning_rate": 3e-4},
}


def defaults_for(task: str) -> dict[str, int | float | bool]:
    """The defaults a run of `task` takes for every hyperparameter it is not given."""
    return {**DEFAULTS, **TASK_DEFAULTS.get(task, {})}


def hyperparameters_invalid(values: dict) -> list[Hyperparameter]:
    """The hyperparameters whose value in `values` is missing or out of bounds."""
    return [h for name, h in HYPERPARAMETERS.items() if not h.check(values.get(name))]

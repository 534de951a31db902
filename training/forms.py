from django import forms
from django.utils.translation import gettext_lazy as _

from training.ml.hyperparameters import HYPERPARAMETERS
from training.models import Task

LABELS = {
    "epochs": _("epochs"),
    "batch_size": _("batch size"),
    "learning_rate": _("learning rate"),
    "max_length": _("window (sub-tokens)"),
    "weight_decay": _("weight decay"),
    "warmup_ratio": _("warm-up share of steps"),
    "eval_fraction": _("share held out for evaluation"),
    "seed": _("seed"),
}


def _field(name: str) -> forms.Field:
    """A form field with the hyperparameter's default and bounds (training.ml.hyperparameters)."""
    h = HYPERPARAMETERS[name]
    kind = forms.IntegerField if h.type is int else forms.FloatField
    return kind(label=LABELS[name], initial=h.default, min_value=h.low, max_value=h.high)


class TrainingForm(forms.Form):
    task = forms.ChoiceField(label=_("task"), choices=Task.choices, initial=Task.TOKEN_CLASSIFICATION)
    epochs = _field("epochs")
    batch_size = _field("batch_size")
    learning_rate = _field("learning_rate")
    max_length = _field("max_length")
    seed = _field("seed")

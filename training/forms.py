from django import forms
from django.utils.translation import gettext_lazy as _

from training.ml.hyperparameters import HYPERPARAMETERS
from training.models import Dataset, Task

LABELS = {
    "epochs": _("epochs"),
    "batch_size": _("batch size"),
    "learning_rate": _("learning rate"),
    "max_length": _("window (sub-tokens)"),
    "weight_decay": _("weight decay"),
    "warmup_ratio": _("warm-up share of steps"),
    "eval_fraction": _("share held out for evaluation"),
    "patience": _("early-stopping patience (epochs without F1 gain; 0: off)"),
    "refit": _("then retrain on training and validation documents for the best epoch count"),
    "seed": _("seed"),
}


def _field(name: str, *, required: bool = True) -> forms.Field:
    """A form field with the hyperparameter's default and bounds (training.ml.hyperparameters); an optional
    one left empty takes the default."""
    h = HYPERPARAMETERS[name]
    if h.type is bool:  # a checkbox: unticked is False, never "empty"
        return forms.BooleanField(label=LABELS[name], initial=h.default, required=False)
    kind = forms.IntegerField if h.type is int else forms.FloatField
    return kind(label=LABELS[name], initial=h.default, min_value=h.low, max_value=h.high, required=required)


class TrainingForm(forms.Form):
    task = forms.ChoiceField(label=_("task"), choices=Task.choices, initial=Task.TOKEN_CLASSIFICATION)
    dataset = forms.ModelChoiceField(label=_("dataset"), queryset=Dataset.objects.all(), required=False,
                                     empty_label=_("snapshot the reviewed documents"))
    epochs = _field("epochs")
    batch_size = _field("batch_size")
    learning_rate = _field("learning_rate")
    max_length = _field("max_length")
    weight_decay = _field("weight_decay", required=False)
    warmup_ratio = _field("warmup_ratio", required=False)
    patience = _field("patience", required=False)
    refit = _field("refit")
    eval_fraction = _field("eval_fraction", required=False)
    seed = _field("seed")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("dataset") is not None:
            cleaned["task"] = cleaned["dataset"].task  # a dataset is of one task
        return cleaned


class DatasetUploadForm(forms.Form):
    """An Excel workbook to validate, then store as a dataset."""

    file = forms.FileField(label=_("Excel workbook (.xlsx)"))
    task = forms.ChoiceField(label=_("task"), required=False,
                             choices=[("", _("from the columns"))] + list(Task.choices))
    sheet = forms.CharField(label=_("sheet"), required=False, max_length=100,
                            help_text=_("Default: the first sheet."))
    name = forms.CharField(label=_("name"), required=False, max_length=255)

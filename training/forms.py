from django import forms
from django.utils.functional import lazy
from django.utils.translation import gettext_lazy as _

from lib.inputs import InputError, id_list_field, moment_field, text_list_field
from training.dataset_builder import FINISH_EXCLUDE, FINISH_KEEP, FINISH_WEIGHT, DatasetFilters
from training.ml.hyperparameters import HYPERPARAMETERS, TASK_DEFAULTS
from training.ml.snapshot import SPLIT_SEED, TEST_FRACTION, VALIDATION_FRACTION
from training.models import Dataset, Task
from training.services.datasets import finish_treatment_default

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
    "refit_continue": _("retraining continues from the best epoch for at most this many epochs "
                        "(0: from scratch)"),
    "max_steps": _("at most this many optimizer steps (0: no limit)"),
    "min_epochs": _("at least this many epochs, whatever the step budget (0: no floor)"),
    "min_validation_entities": _("entities the validation documents need before early stopping trusts them"),
    "weak_weight": _("weight of unreviewed documents' confident predictions (entities; 0: not used)"),
    "weak_threshold": _("confidence a prediction needs to be learnt from an unreviewed document"),
    "weak_max_ratio": _("unreviewed words, at most this many times the reviewed training words"),
    "seed": _("seed"),
}


def _task_defaults_text(name: str) -> str:
    h = HYPERPARAMETERS[name]
    per_task = {task: values[name] for task, values in TASK_DEFAULTS.items() if name in values}
    defaults = "; ".join(f"{label}: {per_task.get(task, h.default):g}" for task, label in Task.choices)
    return _("Empty: the task's default (%(defaults)s).") % {"defaults": defaults}


def _field(name: str, *, required: bool = True) -> forms.Field:
    """A form field with the hyperparameter's default and bounds (training.ml.hyperparameters); an optional
    one left empty takes the default. One whose default depends on the task (TASK_DEFAULTS) starts empty and
    says each task's default."""
    h = HYPERPARAMETERS[name]
    if h.type is bool:  # a checkbox: unticked is False, never "empty"
        return forms.BooleanField(label=LABELS[name], initial=h.default, required=False)
    kind = forms.IntegerField if h.type is int else forms.FloatField
    if any(name in values for values in TASK_DEFAULTS.values()):
        return kind(label=LABELS[name], min_value=h.low, max_value=h.high, required=False,
                    help_text=lazy(_task_defaults_text, str)(name))
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
    refit_continue = _field("refit_continue", required=False)
    max_steps = _field("max_steps", required=False)
    min_epochs = _field("min_epochs", required=False)
    min_validation_entities = _field("min_validation_entities", required=False)
    eval_fraction = _field("eval_fraction", required=False)
    weak_weight = _field("weak_weight", required=False)
    weak_threshold = _field("weak_threshold", required=False)
    weak_max_ratio = _field("weak_max_ratio", required=False)
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


def _api_rule(read, value, name: str):
    """Check a field as the JSON API checks the same field (lib.inputs): one rule for the page, the API and
    its callers; the API's message, naming the field as the API does, becomes the form's error."""
    try:
        return read({name: value}, name)
    except InputError as exc:
        raise forms.ValidationError(str(exc)) from None


def _share(value: float) -> float:
    if not 0 <= value < 1:
        raise forms.ValidationError(_("A share must be at least 0 and below 1."))
    return value


class DatasetBuildForm(forms.Form):
    """Snapshot the reviewed documents as a dataset: the filters of `manage.py build_dataset` and of the API's
    build (training.views.datasets.api_dataset_build), each checked by the same rules."""

    task = forms.ChoiceField(label=_("task"), choices=Task.choices, initial=Task.TOKEN_CLASSIFICATION)
    labels = forms.CharField(label=_("only these labels"), required=False, max_length=5000,
                             help_text=_("Entity types (or document classes), separated by commas; "
                                         "empty: all."))
    reviewed_before = forms.CharField(
        label=_("reviewed before"), required=False, max_length=64,
        widget=forms.TextInput(attrs={"placeholder": "2025-06-30"}),
        help_text=_("YYYY-MM-DD or YYYY-MM-DDTHH:MM: only documents reviewed before then, as they were "
                    "then."))
    document_ids = forms.CharField(label=_("only these documents"), required=False, max_length=100_000,
                                   help_text=_("Document ids, separated by commas; empty: every reviewed "
                                               "document."))
    name = forms.CharField(label=_("name"), required=False,
                           max_length=Dataset._meta.get_field("name").max_length)
    seed = forms.IntegerField(label=_("split seed"), min_value=0, max_value=2**31 - 1)
    validation_fraction = forms.FloatField(label=_("validation share"), validators=[_share])
    test_fraction = forms.FloatField(label=_("test share"), validators=[_share])
    finish_accepted = forms.ChoiceField(
        label=_("predictions accepted by finishing a review"),
        help_text=_("Entities and classes nobody decided on one by one, accepted when a reviewer confirmed "
                    "“Mark as reviewed”."))
    finish_weight = forms.FloatField(label=_("their weight in the loss (with “weight them”)"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        finish = finish_treatment_default()
        self.fields["finish_accepted"].choices = [
            (FINISH_KEEP, _("keep them as any other")), (FINISH_EXCLUDE, _("leave them out of the loss")),
            (FINISH_WEIGHT, _("weight them"))]
        defaults = {"seed": SPLIT_SEED, "validation_fraction": VALIDATION_FRACTION,
                    "test_fraction": TEST_FRACTION, **finish}
        for name, value in defaults.items():
            self.fields[name].initial = value

    def clean_labels(self) -> tuple[str, ...]:
        return tuple(sorted(set(_api_rule(lambda d, n: text_list_field(d, n, max_length=100),
                                          self.cleaned_data["labels"], "labels"))))

    def clean_reviewed_before(self):
        return _api_rule(moment_field, self.cleaned_data["reviewed_before"], "reviewed_before")

    def clean_document_ids(self) -> tuple[int, ...]:
        return tuple(_api_rule(id_list_field, self.cleaned_data["document_ids"], "document_ids"))

    def clean_finish_weight(self) -> float:
        weight = self.cleaned_data["finish_weight"]
        if not 0 < weight < 1:
            raise forms.ValidationError(_("The weight must be above 0 and below 1."))
        return weight

    def clean(self):
        cleaned = super().clean()
        shares = [cleaned.get("validation_fraction"), cleaned.get("test_fraction")]
        if None not in shares and sum(shares) >= 1:
            self.add_error("test_fraction", _("The validation and test shares must leave some documents to "
                                              "train on."))
        return cleaned

    def filters(self) -> DatasetFilters:
        """The DatasetFilters of a valid form."""
        data = self.cleaned_data
        return DatasetFilters(labels=data["labels"], reviewed_before=data["reviewed_before"],
                              document_ids=data["document_ids"], finish_accepted=data["finish_accepted"],
                              finish_weight=data["finish_weight"])

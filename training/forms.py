from django import forms
from django.utils.translation import gettext_lazy as _

from training.models import Task
from training.services import HYPERPARAMETER_LIMITS


def _bounds(name):
    low, high = HYPERPARAMETER_LIMITS[name]
    return {"min_value": low, "max_value": high}


class TrainingForm(forms.Form):
    task = forms.ChoiceField(label=_("task"), choices=Task.choices, initial=Task.TOKEN_CLASSIFICATION)
    epochs = forms.IntegerField(label=_("epochs"), initial=3, **_bounds("epochs"))
    batch_size = forms.IntegerField(label=_("batch size"), initial=16, **_bounds("batch_size"))
    learning_rate = forms.FloatField(label=_("learning rate"), initial=5e-5, **_bounds("learning_rate"))
    max_length = forms.IntegerField(label=_("window (sub-tokens)"), initial=64, **_bounds("max_length"))
    seed = forms.IntegerField(label=_("seed"), initial=42, min_value=0, max_value=2**31 - 1)

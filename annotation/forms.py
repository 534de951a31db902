from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from annotation.models import EntityType


class AddEntityForm(forms.Form):
    start = forms.IntegerField(label=_("first word"), min_value=0, widget=forms.HiddenInput)
    end = forms.IntegerField(label=_("after last word"), min_value=1, widget=forms.HiddenInput)
    label = forms.ModelChoiceField(label=_("type"), queryset=EntityType.objects.all(),
                                   empty_label=_("choose a type"))

    def clean(self):
        data = super().clean()
        if data.get("start") is not None and data.get("end") is not None and data["end"] <= data["start"]:
            raise ValidationError(_("Choose the words of the entity first (click the first and the last word)."))
        return data


class RelabelForm(forms.Form):
    label = forms.ModelChoiceField(label=_("type"), queryset=EntityType.objects.all())

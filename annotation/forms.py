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
            raise ValidationError(_("Choose the words of the entity first (click the first and the last "
                                    "word)."))
        return data


class ActionForm(forms.Form):
    """One change to one entity: always the revision it was based on, plus what the action needs."""

    revision = forms.IntegerField(min_value=1, error_messages={
        "required": _("This change does not say which version of the entity it was based on; reload the "
                      "page.")})
    label = forms.ModelChoiceField(queryset=EntityType.objects.all(), required=False)
    start = forms.IntegerField(min_value=0, required=False)
    end = forms.IntegerField(min_value=1, required=False)
    event = forms.IntegerField(min_value=1, required=False)

    def __init__(self, *args, action: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.action = action

    def clean(self):
        data = super().clean()
        if self.action == "relabel" and not data.get("label"):
            raise ValidationError(_("Choose a valid entity type."))
        if self.action == "resize":
            if data.get("start") is None or data.get("end") is None:
                raise ValidationError(_("Give the first word and the word after the last one."))
            if data["end"] <= data["start"]:
                raise ValidationError(_("An entity needs at least one word."))
        if self.action == "revert" and not data.get("event"):
            raise ValidationError(_("Choose a point in the history."))
        return data


class AcceptAboveForm(forms.Form):
    threshold = forms.FloatField(label=_("confidence at least"), min_value=0.0, max_value=1.0, initial=0.9)


class DocumentRevertForm(forms.Form):
    event = forms.IntegerField(min_value=1)
    head = forms.IntegerField(min_value=0)


class RectForm(forms.Form):
    x0 = forms.FloatField()
    y0 = forms.FloatField()
    x1 = forms.FloatField()
    y1 = forms.FloatField()


class QueueFilterForm(forms.Form):
    q = forms.CharField(label=_("search"), required=False, max_length=200)
    status = forms.ChoiceField(label=_("status"), required=False)
    order = forms.ChoiceField(label=_("order"), required=False)
    uploader = forms.IntegerField(required=False, widget=forms.HiddenInput)
    model_version = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        from annotation.selectors import QUEUE_ORDERS, QueueStatus

        super().__init__(*args, **kwargs)
        self.fields["status"].choices = [("", _("all statuses")), *QueueStatus.choices]
        self.fields["order"].choices = list(QUEUE_ORDERS.items())


class EntityTypeForm(forms.ModelForm):
    class Meta:
        model = EntityType
        fields = ["name", "color", "description", "shortcut"]
        widgets = {"color": forms.TextInput(attrs={"type": "color"}),
                   "shortcut": forms.TextInput(attrs={"size": 2, "maxlength": 1, "inputmode": "numeric"})}

    def clean_name(self):
        return self.cleaned_data["name"].strip().upper()

    def clean_color(self):
        return self.cleaned_data["color"].strip().lower()


class MergeForm(forms.Form):
    source = forms.ModelChoiceField(label=_("merge"), queryset=EntityType.objects.all())
    target = forms.ModelChoiceField(label=_("into"), queryset=EntityType.objects.all())

    def clean(self):
        data = super().clean()
        if data.get("source") and data.get("source") == data.get("target"):
            raise ValidationError(_("Choose two different types to merge."))
        return data


class FinishForm(forms.Form):
    """Marking a document reviewed: whether the reviewer confirmed accepting the predictions left standing,
    and the state of the document they confirmed it for (annotation.selectors.FinishSummary.token)."""

    accept_standing = forms.BooleanField(required=False)
    based_on = forms.RegexField(regex=r"^\d+\.\d+$", max_length=40, required=False)

from django.contrib import admin


class ReadOnlyTabularInline(admin.TabularInline):
    """Rows written by services (events, metrics): shown beside their parent, never edited here."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class FieldLabels:
    """ModelAdmin mixin: translated labels for the model fields that have no verbose_name (a foreign key
    declared without one is labelled with its attribute name, "document", in every language).

    `field_labels` maps such a field to its label; list columns, sort headers and the change form (its
    read-only fields too) use it. A verbose_name on the model field would do the same, at the price of a
    migration per label."""

    field_labels: dict = {}

    def _labelled_columns(self) -> dict:
        columns = self.__dict__.get("_columns")
        if columns is None:  # built once: the change list matches list_display_links by identity
            columns = self.__dict__["_columns"] = {name: _column(name, label)
                                                   for name, label in self.field_labels.items()}
        return columns

    def get_list_display(self, request):
        columns = self._labelled_columns()
        return [columns.get(name, name) if isinstance(name, str) else name
                for name in super().get_list_display(request)]

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["labels"] = {**self.field_labels, **(kwargs.get("labels") or {})}
        return super().get_form(request, obj, change=change, **kwargs)


def _column(name: str, label):
    def column(obj):
        return getattr(obj, name)

    column.__name__ = name
    return admin.display(description=label, ordering=name)(column)

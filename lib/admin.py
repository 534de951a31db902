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

"""django-axes' access attempts admin with labels for its two computed columns (django-axes gives them
none, so the admin showed "Status" and "Expiration" in every language). Its other strings are translated
in locale/pt_BR."""

from __future__ import annotations

from axes import admin as axes_admin
from django.contrib import admin
from django.utils.translation import gettext_lazy as _


class AccessAttemptAdmin(axes_admin.AccessAttemptAdmin):
    @admin.display(description=_("Status"))
    def status(self, obj):
        return super().status(obj)

    @admin.display(description=_("Expires At"))
    def expiration(self, obj):
        return super().expiration(obj)

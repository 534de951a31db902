"""django-rq's dashboard, made safe to click through.

django-rq's views raise (a 500) for a queue index, worker key or job id that no longer exists (a job that
finished and expired between two clicks), for scheduler pages when rq-scheduler is not installed, and its
Dashboard admin model offers change/history/delete pages for a table that does not exist. Here every
django-rq view answers those with a 404 that says why, and the model pages lead back to the dashboard.
"""

from __future__ import annotations

import logging
from functools import wraps

from django.core.exceptions import ImproperlyConfigured
from django.http import Http404
from django.shortcuts import redirect
from django.urls import URLPattern, URLResolver, path
from django_rq.admin import QueueAdmin
from rq.exceptions import NoSuchJobError

logger = logging.getLogger(__name__)

# What django-rq raises for things that are simply not there.
MISSING = (NoSuchJobError, IndexError, KeyError, ValueError, ImproperlyConfigured)


def rq_safe(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except MISSING as exc:
            logger.info("django-rq page %s: %r", request.path, exc)
            raise Http404(str(exc) or exc.__class__.__name__) from None

    return wrapper


def _wrapped(patterns: list) -> list:
    out = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            out.append(pattern)
        else:
            out.append(URLPattern(pattern.pattern, rq_safe(pattern.callback), pattern.default_args,
                                  pattern.name))
    return out


def rq_urlpatterns() -> list:
    """django_rq.urls with every view made safe (mounted at /admin/rq/)."""
    from django_rq import urls

    return _wrapped(urls.urlpatterns)


class SafeQueueAdmin(QueueAdmin):
    def get_urls(self):
        from django_rq.urls import get_admin_urlpatterns, get_api_urlpatterns

        def wrap(view):
            @wraps(view)
            def wrapper(request, *args, **kwargs):
                request.current_app = self.admin_site.name
                return self.admin_site.admin_view(rq_safe(view))(request, *args, **kwargs)

            return wrapper

        dashboard = self.admin_site.admin_view(self.changelist_view)
        return [
            *_wrapped(get_api_urlpatterns(name_prefix="django_rq_")),
            *get_admin_urlpatterns(name_prefix="django_rq_", view_wrapper=wrap),
            path("", dashboard, name="django_rq_dashboard_changelist"),
            # The Dashboard "model" has no rows: its object pages lead back to the dashboard.
            path("<path:object_id>/", self.admin_site.admin_view(
                lambda request, object_id: redirect("admin:django_rq_dashboard_changelist"))),
        ]

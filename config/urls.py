from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from django_rq.models import Dashboard

from annotation import views as review_views
from lib.axes_admin import AccessAttemptAdmin
from lib.rq_admin import SafeQueueAdmin, rq_urlpatterns
from training.views import feedback as feedback_views

admin.autodiscover()  # the apps' admin modules: not imported at start-up (lib/admin_config.py)

# django-rq's dashboard, with its missing-object errors turned into 404s (lib/rq_admin.py).
if admin.site.is_registered(Dashboard):
    admin.site.unregister(Dashboard)
    admin.site.register(Dashboard, SafeQueueAdmin)
# django-axes' attempts, with labels for its computed columns (lib/axes_admin.py).
if admin.site.is_registered(AccessAttempt):
    admin.site.unregister(AccessAttempt)
    admin.site.register(AccessAttempt, AccessAttemptAdmin)

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="queue", permanent=False)),
    # Pages link static/favicon.svg; what asks for /favicon.ico (the admin's pages, feed readers) gets
    # the ICO.
    path("favicon.ico", login_not_required(RedirectView.as_view(url=static("favicon.ico"), permanent=True,
                                                                http_method_names=["get", "head"])),
         name="favicon"),
    path("accounts/login/", login_not_required(auth_views.LoginView.as_view()), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/rq/", include((rq_urlpatterns(), "django_rq"))),
    path("admin/", admin.site.urls),
    path("documents/", review_views.queue, name="queue"),
    # Immediate feedback (training.views.feedback)
    path("documents/<int:pk>/feedback", feedback_views.feedback_send_view, name="feedback"),
    path("documents/<int:pk>/feedback/", feedback_views.feedback_send_view),
    path("documents/<int:pk>/feedback/panel/", feedback_views.feedback_panel, name="feedback-panel"),
    path("documents/<int:pk>/feedback/<int:request_id>/", feedback_views.feedback_status,
         name="feedback-status"),
    path("documents/", include("documents.urls")),
    path("review/", include("annotation.urls")),
    path("training/", include("training.urls")),
    path("labelstudio/", include("training.labelstudio_urls")),
]

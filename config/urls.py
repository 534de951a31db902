from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from django.views.generic import RedirectView

from annotation import views as review_views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="queue", permanent=False)),
    path("accounts/login/", login_not_required(auth_views.LoginView.as_view()), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
    path("documents/", review_views.queue, name="queue"),
    path("documents/", include("documents.urls")),
    path("review/", include("annotation.urls")),
    path("training/", include("training.urls")),
]

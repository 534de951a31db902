from django.urls import path

from training import views

app_name = "training"
urlpatterns = [
    path("", views.training_index, name="index"),
    path("start/", views.training_start, name="start"),
    path("runs/<int:pk>/", views.training_run_detail, name="run"),
    path("api/runs/", views.api_runs, name="api-runs"),
    path("export/", views.annotations_export_download, name="export"),
]

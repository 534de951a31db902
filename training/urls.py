from django.urls import path

from training import dataset_views, run_views, views, views_feedback

app_name = "training"
urlpatterns = [
    path("", views.training_index, name="index"),
    path("start/", views.training_start, name="start"),
    path("runs/<int:pk>/", run_views.run_page, name="run"),
    path("runs/<int:pk>/cancel/", run_views.run_cancel, name="run-cancel"),
    path("runs/<int:pk>/reproduce/", run_views.run_reproduce, name="run-reproduce"),
    path("versions/<int:pk>/", run_views.version_page, name="version"),
    path("versions/<int:pk>/activate/", run_views.version_activate, name="version-activate"),
    path("versions/<int:pk>/download/", run_views.version_download, name="version-download"),
    path("versions/compare/", run_views.version_compare, name="version-compare"),
    path("workers/", run_views.workers_page, name="workers"),
    path("models/", views_feedback.model_history, name="models"),
    path("api/runs/", views.api_runs, name="api-runs"),
    path("api/runs/<int:pk>/", run_views.api_run, name="api-run"),
    path("api/runs/<int:pk>/metrics/", run_views.api_run_metrics, name="api-run-metrics"),
    path("api/runs/<int:pk>/logs/", run_views.api_run_logs, name="api-run-logs"),
    path("api/runs/<int:pk>/cancel/", run_views.api_run_cancel, name="api-run-cancel"),
    path("api/runs/<int:pk>/reproduce/", run_views.api_run_reproduce, name="api-run-reproduce"),
    path("api/versions/", run_views.api_versions, name="api-versions"),
    path("api/versions/<int:pk>/", run_views.api_version, name="api-version"),
    path("api/versions/<int:pk>/activate/", run_views.api_version_activate, name="api-version-activate"),
    path("api/workers/", run_views.api_workers, name="api-workers"),
    path("export/", views.annotations_export_download, name="export"),
    # Datasets: pages, downloads and the JSON API (training.dataset_views)
    path("datasets/", dataset_views.datasets_index, name="datasets"),
    path("datasets/upload/", dataset_views.dataset_upload_page, name="dataset-upload"),
    path("datasets/<int:pk>/", dataset_views.dataset_detail, name="dataset"),
    path("datasets/<int:pk>/download/<str:fmt>/", dataset_views.dataset_download, name="dataset-download"),
    path("api/", dataset_views.api_index, name="api-index"),
    path("api/datasets/", dataset_views.api_datasets, name="api-datasets"),
    path("api/datasets/validate", dataset_views.api_dataset_validate, name="api-dataset-validate"),
    path("api/datasets/validate/", dataset_views.api_dataset_validate),
    path("api/datasets/build", dataset_views.api_dataset_build, name="api-dataset-build"),
    path("api/datasets/build/", dataset_views.api_dataset_build),
    path("api/datasets/<int:pk>/", dataset_views.api_dataset_detail, name="api-dataset"),
    path("api/datasets/<int:pk>/download/<str:fmt>/", dataset_views.api_dataset_download,
         name="api-dataset-download"),
]

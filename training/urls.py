from django.urls import path

from training import dataset_views, views, views_feedback

app_name = "training"
urlpatterns = [
    path("", views.training_index, name="index"),
    path("start/", views.training_start, name="start"),
    path("runs/<int:pk>/", views.training_run_detail, name="run"),
    path("models/", views_feedback.model_history, name="models"),
    path("api/runs/", views.api_runs, name="api-runs"),
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

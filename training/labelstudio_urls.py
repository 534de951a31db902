"""/labelstudio/: Label Studio's ML backend protocol (training.labelstudio_views)."""

from django.urls import path

from training import labelstudio_views as views

app_name = "labelstudio"
urlpatterns = [
    path("health", views.health, name="health"),
    path("setup", views.setup, name="setup"),
    path("predict", views.predict, name="predict"),
    path("webhook", views.webhook, name="webhook"),
]

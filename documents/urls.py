from django.urls import path

from documents import views

app_name = "documents"
urlpatterns = [
    path("", views.document_index, name="list"),
    path("upload/", views.document_upload, name="upload"),
    path("<int:pk>/", views.document_detail, name="detail"),
]

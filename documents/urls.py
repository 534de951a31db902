from django.urls import path
from django.views.generic import RedirectView

from documents import views

app_name = "documents"
urlpatterns = [
    # /documents/ itself is the review queue (annotation.views.queue, routed ahead of this file in
    # config/urls.py, since it lists review progress that `documents` knows nothing of). The name stays
    # here so that {% url 'documents:list' %} keeps working; this view is only reached if that route goes.
    path("", RedirectView.as_view(pattern_name="queue"), name="list"),
    path("upload/", views.document_upload, name="upload"),
    path("<int:pk>/", views.document_detail, name="detail"),
    path("<int:pk>/pages/<int:number>/image/", views.page_image, name="page-image"),
]

from django.urls import path, re_path

from annotation import views

app_name = "annotation"
urlpatterns = [
    path("<int:pk>/", views.review, name="review"),
    path("<int:pk>/annotations/", views.annotation_add, name="add"),
    re_path(r"^(?P<pk>\d+)/annotations/(?P<annotation_id>\d+)/(?P<action>accept|reject|relabel)/$",
            views.annotation_action, name="action"),
    path("<int:pk>/finish/", views.review_finish, name="finish"),
]

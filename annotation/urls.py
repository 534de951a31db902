from django.urls import path, re_path

from annotation import views, views_classes

app_name = "annotation"
urlpatterns = [
    path("<int:pk>/", views.review, name="review"),
    path("<int:pk>/annotations/", views.annotation_add, name="add"),
    re_path(r"^(?P<pk>\d+)/annotations/(?P<annotation_id>\d+)/(?P<action>accept|reject|relabel)/$",
            views.annotation_action, name="action"),
    path("<int:pk>/finish/", views.review_finish, name="finish"),
    # The document's class (text classification): annotation.views_classes
    path("<int:pk>/class/", views_classes.document_class_set, name="class-set"),
    re_path(r"^(?P<pk>\d+)/class/(?P<action>accept|reject)/$", views_classes.document_class_action,
            name="class-action"),
]

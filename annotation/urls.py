from django.urls import path, re_path

from annotation import views, views_classes

app_name = "annotation"
urlpatterns = [
    path("<int:pk>/", views.review, name="review"),
    path("<int:pk>/annotations/", views.annotation_add, name="add"),
    re_path(r"^(?P<pk>\d+)/annotations/(?P<annotation_id>\d+)/(?P<action>accept|reject|relabel|resize|delete|revert)/$",
            views.annotation_action, name="action"),
    path("<int:pk>/accept-above/", views.accept_above, name="accept-above"),
    path("<int:pk>/undo/", views.annotation_undo, name="undo"),
    path("<int:pk>/finish/", views.review_finish, name="finish"),
    path("<int:pk>/next/", views.review_next, name="next"),
    path("<int:pk>/presence/", views.presence, name="presence"),
    path("<int:pk>/pages/<int:number>/words/", views.page_words, name="page-words"),
    path("<int:pk>/history/", views.history, name="history"),
    path("<int:pk>/revert/", views.document_revert, name="revert"),
    path("labels/", views.labels, name="labels"),
    path("labels/<int:pk>/", views.labels, name="label-edit"),
    path("labels/merge/", views.labels_merge, name="labels-merge"),
    # The document's class (text classification): annotation.views_classes
    path("<int:pk>/class/", views_classes.document_class_set, name="class-set"),
    re_path(r"^(?P<pk>\d+)/class/(?P<action>accept|reject)/$", views_classes.document_class_action,
            name="class-action"),
]

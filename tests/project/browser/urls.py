from django.urls import path

from . import views

app_name = "browser"

urlpatterns = [
    path("page/", views.page, name="page"),
    path("chat/", views.chat, name="chat"),
    path("bare/", views.bare, name="bare"),
    path("jquery.js", views.jquery, name="jquery"),
    path("flush/", views.flush, name="flush"),
]

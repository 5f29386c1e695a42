from django.urls import path

from . import views

urlpatterns = [
    path("chat/<str:room>/", views.room, name="room"),
    path("chat/<str:room>/close/", views.close_room, name="close_room"),
]

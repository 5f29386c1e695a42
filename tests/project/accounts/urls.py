from django.urls import path

from . import views

urlpatterns = [
    path("login/", views.login_view),
    path("logout/", views.logout_view),
    path("session/<str:key>/", views.session_value),
    path("visit/", views.visit),
    path("flush/", views.flush),
]

from django.contrib.auth import views as auth_views
from django.urls import include, path

from chat import views as chat_views
from notes import views as notes_views
from pages import views as pages_views

urlpatterns = [
    path("", chat_views.index, name="index"),
    path("notes/", notes_views.index, name="notes"),
    path("state/", pages_views.state, name="state"),
    path("state/server/", pages_views.server_state, name="server_state"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/signup/", pages_views.signup, name="signup"),
    path("", include("rain_ws.urls")),
]

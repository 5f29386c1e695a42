"""The test project's URLs, with a session-refresh view that answers 500."""

from django.urls import path

from tests.project.urls import urlpatterns as project_urlpatterns

from . import views

# First match wins: the refresh URL that rain_ws reverses lands here.
urlpatterns = [path("rain_ws/session/refresh/", views.failing_refresh), *project_urlpatterns]

from django.urls import include, path

urlpatterns = [
    path("", include("rain_ws.urls")),
    path("accounts/", include("tests.project.accounts.urls")),
]

from django.urls import include, path

from rain_ws.views import metrics

urlpatterns = [
    path("metrics/", metrics),
    path("", include("rain_ws.urls")),
    path("accounts/", include("tests.project.accounts.urls")),
    path("browser/", include("tests.project.browser.urls")),
]

from django.urls import include, path

urlpatterns = [
    path("", include("rain_ws.urls")),
    path("", include("tests.project.docs_chat.urls")),
]

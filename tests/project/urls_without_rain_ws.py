"""A URLconf that forgot ``include("rain_ws.urls")`` (tests/test_startup_errors.py)."""

from django.urls import path
from django.views.generic import TemplateView

urlpatterns = [path("", TemplateView.as_view(template_name="index.html"))]

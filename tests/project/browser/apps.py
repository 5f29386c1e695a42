from django.apps import AppConfig


class BrowserConfig(AppConfig):
    name = "tests.project.browser"
    label = "browser"
    rain_component = "browser"
    rain_version = "1.0"

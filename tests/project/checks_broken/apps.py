from django.apps import AppConfig


class ChecksBrokenConfig(AppConfig):
    name = "tests.project.checks_broken"
    label = "checks_broken"
    # The echo app's component and version: rain_ws.E016.
    rain_component = "echo"
    rain_version = "2.0"

from django.apps import AppConfig


class EchoConfig(AppConfig):
    name = "tests.project.echo"
    label = "echo"
    rain_component = "echo"
    rain_version = "2.0"

from django.apps import AppConfig


class RoomsConfig(AppConfig):
    name = "tests.project.rooms_app"
    label = "rooms_app"
    rain_component = "rooms"
    rain_version = "1.0"

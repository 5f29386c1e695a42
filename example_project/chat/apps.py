from django.apps import AppConfig


class ChatConfig(AppConfig):
    """The chat component; its channels are served under ``/chat/1.0/``."""

    name = "chat"
    rain_component = "chat"
    rain_version = "1.0"

from django.apps import AppConfig


class ChatConfig(AppConfig):
    """The chat component of docs/rooms.rst: its channel is /chat/1.0/chat."""

    name = "tests.project.docs_chat"
    label = "chat"

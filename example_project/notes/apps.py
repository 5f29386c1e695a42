from django.apps import AppConfig


class NotesConfig(AppConfig):
    """The notes component; its channels are served under ``/notes/1.0/``."""

    name = "notes"
    rain_component = "notes"
    rain_version = "1.0"

"""``manage.py announce <channel> <event> [json values...] [--room ROOM]``: a broadcast from outside any server."""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

import rain_ws


class Command(BaseCommand):
    help = "Emit an event to every socket of a channel, or of one room of it, in every server process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("channel", help='the public channel name, e.g. "/rooms/1.0/room"')
        parser.add_argument("event")
        parser.add_argument("values", nargs="*", type=json.loads, help="the arguments, each as a JSON value")
        parser.add_argument("--room", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        rain_ws.broadcast(options["channel"], options["event"], *options["values"], room=options["room"])
        self.stdout.write(f"sent {options['event']} to {options['room'] or options['channel']}")

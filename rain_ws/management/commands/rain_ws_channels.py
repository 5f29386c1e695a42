"""``manage.py rain_ws_channels``: every channel the project serves."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from rain_ws.conf import get_settings
from rain_ws.registry import registry
from rain_ws.routing import channel_path


class Command(BaseCommand):
    help = (
        "List every websocket channel: its component, version, handler modules "
        "in run order, URLs and session options."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print JSON for machines.")

    def handle(self, *args: Any, **options: Any) -> None:
        endpoint = get_settings().PATH
        channels = [
            {
                "channel": channel.name,
                "component": channel.component,
                "version": channel.version,
                "handlers": [handler.name for handler in channel.handlers],
                "urls": [endpoint] + ([] if channel.name == "/" else [channel_path(channel.name)]),
                "use_session": channel.use_session,
                "require_session": channel.require_session,
                "login_required": channel.login_required,
            }
            for channel in registry.channels.values()
        ]
        if options["json"]:
            self.stdout.write(json.dumps(channels, indent=2))
            return
        if not channels:
            self.stdout.write("No websocket channels: no installed app has a websockets module.")
            return
        for entry in channels:
            self.stdout.write(self.style.SUCCESS(entry["channel"]))
            if entry["component"] is not None:
                self.stdout.write(f"  component  {entry['component']} {entry['version']}")
            else:
                self.stdout.write("  component  (absolute channel)")
            self.stdout.write(f"  urls       {', '.join(entry['urls'])}")
            options_line = ", ".join(
                f"{name}={'yes' if entry[name] else 'no'}"
                for name in ("require_session", "use_session", "login_required")
            )
            self.stdout.write(f"  session    {options_line}")
            self.stdout.write("  handlers")
            for number, handler in enumerate(entry["handlers"], 1):
                self.stdout.write(f"    {number}. {handler}")

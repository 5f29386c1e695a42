"""``manage.py rain_ws_drain``: drain server processes before they are stopped."""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.core.management.base import BaseCommand, CommandError, CommandParser

from rain_ws.drain import drain_message
from rain_ws.layer import ALL_PROCESSES


class Command(BaseCommand):
    help = (
        "Drain rain_ws server processes: they refuse new connections and close theirs in jittered "
        "batches (DRAIN_BATCH every DRAIN_INTERVAL), with a close code on which clients reconnect "
        "elsewhere. Run it before stopping a process (a preStop hook). Exits once the drain is requested."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--pid", type=int, help="The operating-system id of the server process to drain.")
        which.add_argument("--all", action="store_true", help="Drain every server process of the project.")

    def handle(self, *args: Any, **options: Any) -> None:
        layer = get_channel_layer()
        if layer is None or isinstance(layer, InMemoryChannelLayer):
            raise CommandError(
                "rain_ws_drain reaches server processes through the channel layer: it needs one that spans "
                "processes (channels-redis), not Channels' in-memory layer."
            )
        pid = None if options["all"] else options["pid"]
        async_to_sync(layer.group_send)(ALL_PROCESSES, drain_message(pid))
        self.stdout.write(f"drain requested for {'every process' if pid is None else f'process {pid}'}")

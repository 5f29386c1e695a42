"""
rain_ws as bench/servers/rain_asgi.py serves it, with the start of socket
workers chosen by ``BENCH_EAGER_START`` for bench/eager.py: ``1`` eager (the
worker's first step runs inside its creation; Python 3.12 and later), ``0``
scheduled on the event loop as on Python 3.11. Unset, rain_ws's default.
"""

import os
import sys

from bench.servers.rain_asgi import application  # noqa: F401
from rain_ws import dispatch

_wanted = os.environ.get("BENCH_EAGER_START")
if _wanted is not None:
    if _wanted == "1" and sys.version_info < (3, 12):
        raise SystemExit("BENCH_EAGER_START=1 needs Python 3.12 or later")
    dispatch.EAGER_START = _wanted == "1"

"""manage.py rain_ws_channels."""

import json
from io import StringIO

from django.core.management import call_command


def test_json_lists_every_channel_with_its_options():
    out = StringIO()
    call_command("rain_ws_channels", "--json", stdout=out)
    channels = {entry["channel"]: entry for entry in json.loads(out.getvalue())}
    memo = channels["/memo/1.0/memo"]
    assert memo["component"] == "memo" and memo["version"] == "1.0"
    assert memo["handlers"] == ["tests.project.memo.websockets.handle"]
    assert memo["urls"] == ["/socket.io/", "/socket.io/memo/1.0/memo/"]
    assert (memo["use_session"], memo["require_session"], memo["login_required"]) == (True, True, False)
    assert channels["/memo/1.0/private"]["login_required"] is True
    assert channels["/echo/2.0/echo"]["require_session"] is False
    assert channels["/"]["urls"] == ["/socket.io/"] and channels["/"]["component"] is None


def test_text_output_names_handlers_in_run_order():
    out = StringIO()
    call_command("rain_ws_channels", stdout=out)
    text = out.getvalue()
    assert "/echo/2.0/sync" in text
    assert "1. tests.project.echo.websockets.sync_handler" in text
    assert "require_session=no, use_session=no, login_required=no" in text

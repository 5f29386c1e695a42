"""Discovery of component handlers: names, order, and malformed modules."""

import sys
import textwrap
import uuid

import pytest
from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured

from rain_ws.registry import Registry


@pytest.fixture
def make_app(tmp_path, monkeypatch):
    """Write a throwaway app package and return its AppConfig."""
    monkeypatch.syspath_prepend(str(tmp_path))
    created = []

    def make(files: dict[str, str], config: str = "") -> AppConfig:
        name = f"app_{uuid.uuid4().hex[:8]}"
        created.append(name)
        root = tmp_path / name
        root.mkdir()
        (root / "__init__.py").write_text("")
        (root / "apps.py").write_text(
            "from django.apps import AppConfig\n"
            f"class Config(AppConfig):\n    name = {name!r}\n    label = 'comp'\n"
            + textwrap.indent(textwrap.dedent(config), "    ")
        )
        for relative, text in files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        return AppConfig.create(f"{name}.apps.Config")

    yield make
    for name in created:
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[module]


def populate(*app_configs: AppConfig) -> Registry:
    registry = Registry()
    registry.populate(app_configs)
    return registry


def test_module_level_handler_is_prefixed_with_component_and_version(make_app):
    app = make_app(
        {"websockets.py": "channel = 'chat'\nasync def handle(socket): pass\n"},
        config="rain_component = 'talk'\nrain_version = '2.1'\n",
    )
    registry = populate(app)
    assert list(registry.channels) == ["/talk/2.1/chat"]
    channel = registry.get("/talk/2.1/chat")
    assert (channel.component, channel.version) == ("talk", "2.1")
    assert channel.handlers[0].is_async


def test_defaults_are_app_label_and_version_one(make_app):
    app = make_app({"websockets.py": "channel = 'chat'\ndef handle(socket): pass\n"})
    registry = populate(app)
    assert list(registry.channels) == ["/comp/1.0/chat"]
    assert not registry.get("/comp/1.0/chat").handlers[0].is_async


def test_absolute_and_main_namespace_are_not_prefixed(make_app):
    app = make_app(
        {
            "websockets.py": """
            import rain_ws

            @rain_ws.channel("/core")
            async def core(socket): pass

            @rain_ws.channel("/")
            async def main(socket): pass
            """
        }
    )
    registry = populate(app)
    assert list(registry.channels) == ["/core", "/"]
    assert registry.get("/core").component is None


def test_decorator_imported_by_name_is_not_taken_for_a_channel(make_app):
    app = make_app(
        {
            "websockets.py": """
            from rain_ws import channel

            @channel("one")
            async def one(socket): pass
            """
        }
    )
    assert list(populate(app).channels) == ["/comp/1.0/one"]


def test_package_submodules_in_name_order_and_handlers_in_definition_order(make_app):
    app = make_app(
        {
            "websockets/__init__.py": "",
            "websockets/b_second.py": "channel = 'chat'\nasync def handle(socket): pass\n",
            "websockets/a_first.py": """
            import rain_ws

            @rain_ws.channel("chat")
            async def first(socket): pass

            @rain_ws.channel("chat")
            async def second(socket): pass
            """,
            "websockets/_helpers.py": "VALUE = 1\n",
        }
    )
    registry = populate(app)
    names = [handler.name.rsplit(".", 2)[-2:] for handler in registry.get("/comp/1.0/chat").handlers]
    assert names == [["a_first", "first"], ["a_first", "second"], ["b_second", "handle"]]


def test_handlers_of_several_apps_share_an_absolute_channel_in_app_order(make_app):
    first = make_app({"websockets.py": "channel = '/shared'\nasync def handle(socket): pass\n"})
    second = make_app({"websockets.py": "channel = '/shared'\nasync def handle(socket): pass\n"})
    handlers = populate(first, second).get("/shared").handlers
    assert [h.module for h in handlers] == [f"{first.name}.websockets", f"{second.name}.websockets"]


def test_app_without_websockets_module_is_skipped(make_app):
    assert populate(make_app({})).channels == {}


def test_authorize_is_attached_to_the_modules_handlers(make_app):
    app = make_app(
        {
            "websockets.py": """
            channel = 'chat'
            async def handle(socket): pass
            async def authorize(socket): return True
            """
        }
    )
    handler = populate(app).get("/comp/1.0/chat").handlers[0]
    assert handler.authorize is not None and handler.authorize_is_async


@pytest.mark.parametrize(
    "source, message",
    [
        ("async def handle(socket): pass\n", "defines handle() but no module-level `channel`"),
        ("channel = 'chat'\n", "defines `channel` but no handle(socket)"),
        ("channel = 'chat'\nhandle = 3\n", "handle is not callable"),
        ("channel = 5\nasync def handle(socket): pass\n", "channel must be a string"),
        ("channel = 'bad name!'\nasync def handle(socket): pass\n", "channel 'bad name!' is not valid"),
        ("channel = 'a//b'\nasync def handle(socket): pass\n", "channel 'a//b' is not valid"),
        ("channel = '/x/'\nasync def handle(socket): pass\n", "channel '/x/' is not valid"),
        ("VALUE = 1\n", "declares no websocket handler"),
        ("import does_not_exist_anywhere\n", "could not import the websocket module"),
        ("raise RuntimeError('boom')\n", "RuntimeError: boom"),
        ("channel = 'c'\nasync def handle(socket): pass\nauthorize = 1\n", "authorize is not callable"),
    ],
)
def test_malformed_module_stops_start_up_naming_it(make_app, source, message):
    app = make_app({"websockets.py": source})
    with pytest.raises(ImproperlyConfigured) as raised:
        populate(app)
    assert message in str(raised.value)
    assert f"{app.name}.websockets" in str(raised.value)


def test_invalid_component_id_is_refused(make_app):
    app = make_app(
        {"websockets.py": "channel = 'chat'\nasync def handle(socket): pass\n"},
        config="rain_component = 'has space'\n",
    )
    with pytest.raises(ImproperlyConfigured, match="rain_component 'has space' is not valid"):
        populate(app)


def test_channel_decorator_needs_a_name():
    import rain_ws

    with pytest.raises(TypeError):
        rain_ws.channel(lambda socket: None)


def test_project_registry_holds_the_test_components():
    from rain_ws.registry import registry

    assert {"/", "/custom", "/echo/2.0/echo", "/echo/2.0/sync"} <= set(registry.channels)


def test_routes_cover_the_multiplexed_endpoint_and_each_channel():
    from rain_ws.routing import channel_path, websocket_urlpatterns

    patterns = [p.pattern.regex.pattern for p in websocket_urlpatterns]
    assert patterns[0] == r"^socket\.io/$"
    assert channel_path("/echo/2.0/echo") == "/socket.io/echo/2.0/echo/"
    assert r"^socket\.io/echo/2\.0/echo/$" in patterns
    # The main namespace is reached through the multiplexed endpoint only.
    assert all(p != r"^socket\.io//$" for p in patterns)

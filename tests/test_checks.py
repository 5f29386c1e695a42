"""rain_ws's system checks: every id, and `manage.py check` listing them all at once."""

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from django.apps import AppConfig
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from rain_ws.conf import get_settings
from rain_ws.registry import Registry, registry

ROOT = Path(__file__).resolve().parent.parent


def rain_ws_messages(**kwargs):
    return [m for m in run_checks(tags=["rain_ws"], **kwargs) if m.id.startswith("rain_ws.")]


def ids(**kwargs) -> list[str]:
    return sorted(m.id for m in rain_ws_messages(**kwargs))


def by_id(check_id: str, **kwargs):
    return [m for m in rain_ws_messages(**kwargs) if m.id == check_id]


class SubclassedSessionMiddleware(SessionMiddleware):
    pass


@pytest.fixture
def keep_registry(monkeypatch):
    """Put the project registry back after a test that replaces its contents."""
    monkeypatch.setattr(registry, "channels", registry.channels)
    monkeypatch.setattr(registry, "problems", registry.problems)
    return registry


@pytest.fixture
def make_app(tmp_path, monkeypatch):
    """Write a throwaway app package and return its AppConfig."""
    monkeypatch.syspath_prepend(str(tmp_path))
    created = []

    def make(files: dict[str, str], label: str = "comp", config: str = "") -> AppConfig:
        name = f"app_{uuid.uuid4().hex[:8]}"
        created.append(name)
        root = tmp_path / name
        root.mkdir()
        (root / "__init__.py").write_text("")
        (root / "apps.py").write_text(
            "from django.apps import AppConfig\n"
            f"class Config(AppConfig):\n    name = {name!r}\n    label = {label!r}\n"
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


@pytest.fixture
def discovered(keep_registry):
    """Discover stand-in apps into the project registry, as ready() does."""

    def discover(*app_configs: AppConfig) -> Registry:
        found = Registry()
        found.populate(app_configs, strict=False)
        keep_registry.channels = found.channels
        keep_registry.problems = found.problems
        return found

    return discover


# The test project itself


def test_the_test_project_has_no_rain_ws_issue():
    assert rain_ws_messages() == []


# E001-E004: settings.RAIN_WS


def test_every_settings_problem_is_reported_at_once():
    bad = {
        "PING_INTERVL": 3,
        "PING_TIMEOUT": 0,
        "PATH": "socket.io",
        "ALLOWED_ORIGINS": ["example.com"],
        "MAX_PAYLOAD": 4096,
        "MAX_UNREAD_BYTES": 2048,
    }
    with override_settings(RAIN_WS=bad):
        messages = rain_ws_messages()
        with pytest.raises(ImproperlyConfigured) as raised:
            get_settings()
    texts = {m.id: [] for m in messages}
    for m in messages:
        texts[m.id].append(m.msg)
    assert sorted(texts) == ["rain_ws.E002", "rain_ws.E003", "rain_ws.E004"]
    assert len(texts["rain_ws.E003"]) == 3
    assert all(m.is_serious() for m in messages)
    # Code that reads the settings at run time gets every problem too.
    for m in messages:
        assert m.msg in str(raised.value)


def test_e001_not_a_dict():
    with override_settings(RAIN_WS=["PATH"]):
        [message] = rain_ws_messages()
    assert message.id == "rain_ws.E001"
    assert "RAIN_WS must be a dict, got list" in message.msg
    assert "RAIN_WS = {" in message.hint


def test_e002_unknown_key_suggests_the_closest():
    with override_settings(RAIN_WS={"PING_INTERVL": 3, "max_payload": 2048}):
        [message] = rain_ws_messages()
    assert message.id == "rain_ws.E002"
    assert "unknown key(s) PING_INTERVL, max_payload" in message.msg
    assert "Did you mean 'PING_INTERVAL' for 'PING_INTERVL'?" in message.hint
    assert "Did you mean 'MAX_PAYLOAD' for 'max_payload'?" in message.hint


@pytest.mark.parametrize(
    "value, text",
    [
        ({"PING_INTERVAL": -1}, "RAIN_WS['PING_INTERVAL'] must be a positive number of seconds, got -1."),
        ({"MAX_ATTACHMENTS": "10"}, "RAIN_WS['MAX_ATTACHMENTS'] must be an integer from 0 to 10000, got '10'."),
        ({"REQUIRE_SESSION": "no"}, "RAIN_WS['REQUIRE_SESSION'] must be True or False, got 'no'."),
        ({"PATH": "/socket.io"}, "must start and end with '/', like '/socket.io/'"),
        ({"ALLOWED_ORIGINS": ["*"]}, "'*' (any origin) is no longer accepted"),
        ({"ALLOWED_ORIGINS": "https://a.example"}, "must be a list of origins"),
    ],
)
def test_e003_invalid_value(value, text):
    with override_settings(RAIN_WS=value):
        [message] = rain_ws_messages()
    assert message.id == "rain_ws.E003"
    assert text in message.msg


@pytest.mark.parametrize(
    "value, text",
    [
        (
            {"DISCONNECT_IDLE": True, "MAX_CONNECTIONS": 10, "DISCONNECT_IDLE_ON_MAX_CONN": 20},
            "the idle reaper would never run",
        ),
        ({"MAX_UNREAD_BYTES": 2048, "MAX_PAYLOAD": 4096}, "MAX_UNREAD_BYTES'] (2048) must be at least MAX_PAYLOAD"),
        ({"MAX_QUEUED_BYTES": 2048, "MAX_PAYLOAD": 4096}, "MAX_QUEUED_BYTES'] (2048) must be at least MAX_PAYLOAD"),
    ],
)
def test_e004_values_that_contradict_each_other(value, text):
    with override_settings(RAIN_WS=value):
        [message] = rain_ws_messages()
    assert message.id == "rain_ws.E004"
    assert text in message.msg


def test_e004_is_not_reported_for_a_value_that_is_invalid_itself():
    with override_settings(RAIN_WS={"MAX_UNREAD_BYTES": 2048, "MAX_PAYLOAD": "big"}):
        assert ids() == ["rain_ws.E003"]


# E010-E016: the websocket modules


@pytest.mark.parametrize(
    "source, check_id, text",
    [
        ("async def handle(socket): pass\n", "rain_ws.E010", "defines handle() but no module-level `channel`"),
        ("channel = 'chat'\n", "rain_ws.E010", "defines `channel` but no handle(socket)"),
        ("VALUE = 1\n", "rain_ws.E010", "declares no websocket handler"),
        ("channel = 'chat'\nhandle = 3\n", "rain_ws.E011", "handle is not callable: it is int 3"),
        (
            "channel = 'chat'\nasync def handle(): pass\n",
            "rain_ws.E011",
            "handle() cannot be called as handle(socket): it must take one argument, the socket",
        ),
        ("channel = 'chat'\ndef handle(socket, room): pass\n", "rain_ws.E011", "handle(socket, room) cannot be"),
        ("channel = 'chat'\nasync def handle(socket):\n    yield 1\n", "rain_ws.E011", "is a generator function"),
        (
            "import rain_ws\n@rain_ws.channel('x')\nasync def greet(): pass\n",
            "rain_ws.E011",
            "@rain_ws.channel('x'): greet() cannot be called as greet(socket)",
        ),
        ("channel = 5\nasync def handle(socket): pass\n", "rain_ws.E012", "channel must be a string, got 5"),
        ("channel = 'bad name!'\nasync def handle(socket): pass\n", "rain_ws.E012", "channel 'bad name!' is not valid"),
        ("channel = '/x/'\nasync def handle(socket): pass\n", "rain_ws.E012", "channel '/x/' is not valid"),
        (
            "channel = 'c'\nasync def handle(socket): pass\nauthorize = 1\n",
            "rain_ws.E014",
            "authorize is not callable",
        ),
        (
            "channel = 'c'\nasync def handle(socket): pass\nasync def authorize(): return True\n",
            "rain_ws.E014",
            "authorize() cannot be called as authorize(socket)",
        ),
        (
            "channel = 'c'\nasync def handle(socket): pass\ndef authorize(socket, user): return True\n",
            "rain_ws.E014",
            "authorize(socket, user) cannot be called as authorize(socket)",
        ),
        (
            "channel = 'c'\nasync def handle(socket): pass\nlogin_required = 1\n",
            "rain_ws.E015",
            "login_required must be True or False, got 1",
        ),
    ],
)
def test_a_malformed_module_is_a_check_error_naming_it(make_app, discovered, source, check_id, text):
    app = make_app({"websockets.py": source})
    discovered(app)
    [message] = rain_ws_messages()
    assert message.id == check_id
    assert text in message.msg
    assert message.obj == f"{app.name}.websockets"
    assert message.hint


def test_handlers_that_fit_the_call_are_accepted(make_app, discovered):
    app = make_app(
        {
            "websockets.py": """
            import functools
            import rain_ws

            channel = "chat"

            async def handle(socket, greeting="hello"): pass

            def authorize(*args): return True

            @rain_ws.channel("other")
            def other(socket, /): pass

            @rain_ws.channel("partial")
            @functools.wraps(other)
            def wrapped(*args, **kwargs): pass
            """
        }
    )
    discovered(app)
    assert rain_ws_messages() == []


def test_e013_invalid_component_is_reported_once_per_app(make_app, discovered):
    source = """
    import rain_ws

    @rain_ws.channel("a")
    def a(socket): pass

    @rain_ws.channel("b")
    def b(socket): pass
    """
    app = make_app({"websockets.py": source}, config="rain_component = 'has space'\n")
    discovered(app)
    [message] = rain_ws_messages()
    assert message.id == "rain_ws.E013"
    assert "rain_component 'has space' is not valid" in message.msg


def test_discovery_carries_on_past_problems_and_lists_them_all(make_app, discovered):
    broken = make_app(
        {
            "websockets/__init__.py": "",
            "websockets/a.py": "channel = 'a'\nasync def handle(): pass\n",
            "websockets/b.py": "channel = 5\nasync def handle(socket): pass\n",
            "websockets/c.py": "channel = 'c'\nasync def handle(socket): pass\nrequire_session = 'no'\n",
            "websockets/d.py": "channel = 'fine'\nasync def handle(socket): pass\n",
        },
        label="broken",
    )
    other = make_app({"websockets.py": "VALUE = 1\n"}, label="other")
    found = discovered(broken, other)
    assert ids() == ["rain_ws.E010", "rain_ws.E011", "rain_ws.E012", "rain_ws.E015"]
    # What is right is still discovered.
    assert "/broken/1.0/fine" in found.channels
    # `manage.py check broken` reports that app's problems only.
    assert ids(app_configs=[broken]) == ["rain_ws.E011", "rain_ws.E012", "rain_ws.E015"]
    assert ids(app_configs=[other]) == ["rain_ws.E010"]


def test_e016_two_apps_on_one_component_name_both_labels(make_app, discovered):
    handler = "channel = 'chat'\nasync def handle(socket): pass\n"
    first = make_app({"websockets.py": handler}, label="chat")
    second = make_app({"websockets.py": handler}, label="chat_copy", config="rain_component = 'chat'\n")
    discovered(first, second)
    [message] = rain_ws_messages()
    assert message.id == "rain_ws.E016"
    assert "The apps 'chat' and 'chat_copy' are the same component 'chat' version '1.0'" in message.msg
    assert "Both serve /chat/1.0/chat" in message.msg
    assert "rain_component = 'chat_copy'" in message.hint
    assert message.obj == "chat_copy"


def test_e016_even_without_a_shared_channel(make_app, discovered):
    first = make_app({"websockets.py": "channel = 'a'\nasync def handle(socket): pass\n"}, label="one")
    second = make_app(
        {"websockets.py": "channel = 'b'\nasync def handle(socket): pass\n"},
        label="two",
        config="rain_component = 'one'\n",
    )
    discovered(first, second)
    [message] = rain_ws_messages()
    assert message.id == "rain_ws.E016" and "Both serve" not in message.msg


def test_no_e016_for_other_versions_or_absolute_channels(make_app, discovered):
    v1 = make_app({"websockets.py": "channel = 'chat'\nasync def handle(socket): pass\n"}, label="chat")
    v2 = make_app(
        {"websockets.py": "channel = 'chat'\nasync def handle(socket): pass\n"},
        label="chat2",
        config="rain_component = 'chat'\nrain_version = '2.0'\n",
    )
    shared = make_app(
        {"websockets.py": "channel = '/status'\nasync def handle(socket): pass\n"},
        label="chat3",
        config="rain_component = 'chat'\n",
    )
    discovered(v1, v2, shared)
    assert rain_ws_messages() == []


def test_strict_populate_still_raises_on_the_first_problem(make_app):
    app = make_app({"websockets.py": "channel = 'chat'\nasync def handle(): pass\n"})
    with pytest.raises(ImproperlyConfigured, match=r"websockets: handle\(\) cannot be called as handle\(socket\)"):
        Registry().populate([app])


# W002-W004: the ASGI set-up


def test_w002_asgi_application_missing():
    with override_settings(ASGI_APPLICATION=None):
        [message] = by_id("rain_ws.W002")
    assert "ASGI_APPLICATION is not set" in message.msg
    assert "ASGI_APPLICATION = 'tests.project.asgi.application'" in message.hint


def installed_apps_without(*names: str) -> list[str]:
    from django.conf import settings

    return [app for app in settings.INSTALLED_APPS if app not in names]


def test_w003_daphne_missing(keep_registry):
    with override_settings(INSTALLED_APPS=installed_apps_without("daphne")):
        [message] = by_id("rain_ws.W003")
    assert not message.is_serious()
    assert "runserver` serves WSGI" in message.msg and "400" in message.msg
    assert "Put 'daphne' first in INSTALLED_APPS" in message.hint
    assert "SILENCED_SYSTEM_CHECKS" in message.hint


def test_w004_channels_missing(keep_registry):
    with override_settings(INSTALLED_APPS=installed_apps_without("channels")):
        assert ids() == ["rain_ws.W004"]


# E020, E021: sessions


def test_e020_session_middleware_missing():
    from django.conf import settings

    middleware = [m for m in settings.MIDDLEWARE if "SessionMiddleware" not in m]
    with override_settings(MIDDLEWARE=middleware):
        [message] = rain_ws_messages()
    assert message.id == "rain_ws.E020" and message.is_serious()
    assert "every CONNECT is refused with 'session required'" in message.msg
    assert "django.contrib.sessions.middleware.SessionMiddleware" in message.hint
    # A subclass of SessionMiddleware does the job.
    with override_settings(MIDDLEWARE=[*middleware, f"{__name__}.SubclassedSessionMiddleware"]):
        assert rain_ws_messages() == []


def test_no_e020_when_no_socket_requires_a_session(make_app, discovered):
    app = make_app({"websockets.py": "channel = 'c'\nrequire_session = False\nasync def handle(socket): pass\n"})
    with override_settings(MIDDLEWARE=[]):
        discovered(app)
        assert rain_ws_messages() == []
        # login_required needs the session too.
        source = "channel = 'c'\nrequire_session = False\nlogin_required = True\nasync def handle(socket): pass\n"
        discovered(make_app({"websockets.py": source}))
        assert ids() == ["rain_ws.E020"]
        # Without any channel yet, RAIN_WS["REQUIRE_SESSION"] decides.
        discovered()
        assert ids() == ["rain_ws.E020"]
        with override_settings(RAIN_WS={"REQUIRE_SESSION": False}):
            assert rain_ws_messages() == []


def test_e021_contrib_sessions_missing_with_the_database_engine(keep_registry):
    with override_settings(INSTALLED_APPS=installed_apps_without("django.contrib.sessions")):
        [message] = rain_ws_messages()
        assert message.id == "rain_ws.E021"
        assert "'django.contrib.sessions.backends.db'" in message.msg
        assert "Add 'django.contrib.sessions' to INSTALLED_APPS" in message.hint
        with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies"):
            assert rain_ws_messages() == []


# W005: the channel layer


DEPLOYED = {"DEBUG": False, "ALLOWED_HOSTS": ["chat.example.com"]}
IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
REDIS = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer"}}


def test_w005_in_memory_layer_on_a_deployed_site():
    with override_settings(CHANNEL_LAYERS=IN_MEMORY, **DEPLOYED):
        [message] = rain_ws_messages()
    assert message.id == "rain_ws.W005" and not message.is_serious()
    assert "The channel layer is InMemoryChannelLayer while DEBUG is False" in message.msg
    assert "'chat.example.com'" in message.msg
    assert "rooms and broadcasts reach only one process" in message.msg
    assert "channels_redis.pubsub.RedisPubSubChannelLayer" in message.hint


def test_w005_no_channel_layer_at_all():
    with override_settings(CHANNEL_LAYERS={}, **DEPLOYED):
        [message] = rain_ws_messages()
    assert message.id == "rain_ws.W005"
    assert message.msg.startswith("No channel layer is set")


@pytest.mark.parametrize(
    "overrides",
    [
        {"CHANNEL_LAYERS": REDIS, **DEPLOYED},
        {"CHANNEL_LAYERS": IN_MEMORY, "DEBUG": True, "ALLOWED_HOSTS": ["chat.example.com"]},
        # DEBUG off on this machine only, as the test project runs.
        {"CHANNEL_LAYERS": IN_MEMORY, "DEBUG": False, "ALLOWED_HOSTS": ["localhost", "127.0.0.1", "app.localhost"]},
    ],
)
def test_no_w005(overrides):
    with override_settings(**overrides):
        assert rain_ws_messages() == []


# Projects, in a subprocess


def manage_py_check(settings: str, cwd: Path = ROOT, manage: tuple[str, ...] = ("-m", "django")):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": settings}
    return subprocess.run(
        [sys.executable, *manage, "check"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_manage_py_check_lists_every_problem_at_once():
    result = manage_py_check("tests.project.settings_checks_broken")
    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr
    expected = [
        "E002", "E003", "E004", "E010", "E011", "E012", "E014", "E015", "E016", "E020", "E021",
        "W001", "W002", "W003", "W004", "W005",
    ]  # fmt: skip
    missing = [check_id for check_id in expected if f"(rain_ws.{check_id})" not in output]
    assert not missing, output
    assert "Did you mean 'PING_INTERVAL'" in output
    assert "The apps 'echo' and 'checks_broken' are the same component 'echo' version '2.0'" in output


@pytest.mark.parametrize(
    "settings, cwd, manage",
    [
        ("tests.project.settings", ROOT, ("-m", "django")),
        ("mysite.settings", ROOT / "example_project", ("manage.py",)),
    ],
)
def test_the_projects_pass_manage_py_check_clean(settings, cwd, manage):
    result = manage_py_check(settings, cwd, manage)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout

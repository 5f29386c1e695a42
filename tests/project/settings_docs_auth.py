"""The test project with the token-authenticated component of docs/auth.rst and the LOGGING of docs/logging.rst."""

from .settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.project.orders"]  # noqa: F405

# docs/logging.rst shows this LOGGING.
# logging-example-start
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "{asctime} {levelname} {name}: {message}", "style": "{"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "loggers": {
        # WARNING shows refusals and closes; INFO adds the idle reaper and
        # events without a listener.
        "rain_ws": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
# logging-example-end

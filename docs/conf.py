"""Sphinx configuration for the rain_ws documentation."""

import sys
from pathlib import Path

# autodoc imports rain_ws from this checkout, and rain_ws imports Django
# models and settings: configure a minimal project first.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import django  # noqa: E402
from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "rain_ws",
        ],
        DATABASES={},
        SECRET_KEY="docs-build-only",
        USE_TZ=True,
    )
    django.setup()

project = "rain_ws"
author = "rain_ws contributors"
copyright = "rain_ws contributors"
release = "0.1.0"
version = "0.1"

extensions = ["sphinx.ext.autodoc"]

exclude_patterns = ["_build"]
root_doc = "index"

html_theme = "alabaster"
html_title = "rain_ws 0.1.0"

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True

#: Classes users receive but never construct: their signatures would only
#: show rain_ws's internals.
_NO_CONSTRUCTOR = {"rain_ws.Socket"}


def _hide_constructor(app, what, name, obj, options, signature, return_annotation):
    if what == "class" and name in _NO_CONSTRUCTOR:
        return "", None
    return None


def setup(app):
    app.connect("autodoc-process-signature", _hide_constructor)

"""Sphinx configuration for the rain_ws documentation."""

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

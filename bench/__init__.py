"""Reproducible benchmarks of rain_ws: see README.md."""

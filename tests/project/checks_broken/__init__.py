"""
A component with every kind of mistake in its websockets package, installed
only by settings_checks_broken (for tests/test_checks.py).
"""

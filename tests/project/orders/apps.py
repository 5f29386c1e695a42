from django.apps import AppConfig


class OrdersConfig(AppConfig):
    """The component of docs/auth.rst: its channels are /orders/1.0/<channel>."""

    name = "tests.project.orders"
    label = "orders"

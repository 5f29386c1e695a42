from django.apps import AppConfig


class PagesConfig(AppConfig):
    """
    The site around the components: the layout (``base.html``), the
    stylesheet and toasts, the sign-up form and the connection page. It has
    no ``websockets`` module, so it serves no channel of its own.
    """

    name = "pages"

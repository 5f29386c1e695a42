"""API tokens: the user's id and scopes, signed and timestamped, kept in no table."""

from django.core import signing

import rain_ws

SALT = "orders.api-token"
MAX_AGE = 60 * 60  # seconds a token stays valid


def make_token(user, scopes=("orders:read",)):
    """A token for ``user``, to hand to a program (from an API view, a command...)."""
    return signing.dumps({"user": user.pk, "scopes": list(scopes)}, salt=SALT)


def read_token(token):
    """The token's claims; raise RainError, which refuses the CONNECT, if it is bad."""
    try:
        return signing.loads(token, salt=SALT, max_age=MAX_AGE)
    except signing.SignatureExpired:
        raise rain_ws.RainError("token expired", "token_expired") from None
    except signing.BadSignature:
        raise rain_ws.RainError("invalid token", "invalid_token") from None

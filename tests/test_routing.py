"""websocket_application() and the composable pieces it is made of."""

from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from rain_ws.routing import websocket_application, websocket_urlpatterns
from rain_ws.security import OriginValidator

QUERY = "?EIO=4&transport=websocket"


async def open_and_connect(application, path: str, namespace: str) -> str:
    communicator = WebsocketCommunicator(application, path + QUERY)
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_from()).startswith("0{")
    await communicator.send_to(text_data=f"40{namespace},")
    reply = await communicator.receive_from()
    await communicator.disconnect()
    return reply


async def test_channel_route_serves_only_its_namespace():
    application = websocket_application()
    assert (await open_and_connect(application, "/socket.io/echo/2.0/echo/", "/echo/2.0/echo")).startswith(
        '40/echo/2.0/echo,{"sid":'
    )
    assert await open_and_connect(application, "/socket.io/echo/2.0/echo/", "/echo/2.0/sync") == (
        '44/echo/2.0/sync,{"message":"Invalid namespace"}'
    )


async def test_unknown_path_is_refused_at_the_handshake(caplog):
    communicator = WebsocketCommunicator(websocket_application(), "/socket.io/nope/" + QUERY)
    connected, _ = await communicator.connect()
    assert not connected
    assert "no channel is served there" in caplog.text


async def test_a_stack_of_your_own_with_channels_url_router():
    application = OriginValidator(URLRouter(websocket_urlpatterns))
    assert (await open_and_connect(application, "/socket.io/", "/echo/2.0/echo")).startswith('40/echo/2.0/echo,{"sid":')

"""
Small asyncio helpers: sync code in worker threads, sends that do not wait,
and async code run from sync code.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.db import close_old_connections

__all__ = ["call_from_sync", "run_sync", "start_send"]


def _call_with_database(function: Callable[..., Any], *args: Any) -> Any:
    close_old_connections()
    try:
        return function(*args)
    finally:
        close_old_connections()


async def run_sync(function: Callable[..., Any], *args: Any) -> Any:
    """
    Run a plain ``def`` handler or listener in a worker thread.

    Each call may take any thread of the pool, so one slow sync listener does
    not hold up the others; database connections are closed around the call,
    as Django does around a request, so the ORM is safe to use.
    """
    return await sync_to_async(_call_with_database, thread_sensitive=False)(function, *args)


def start_send(awaitable: Any) -> Any:
    """
    Run an ASGI ``send()`` up to its first wait. Return ``None`` if it
    finished, else an awaitable that finishes it.

    Servers buffer what they send, so a send nearly always finishes without
    waiting: running it here costs no task, and only a send that does wait
    needs one.
    """
    if not isinstance(awaitable, Coroutine):
        return None if isinstance(awaitable, asyncio.Future) and awaitable.done() else awaitable
    try:
        waiting_on = awaitable.send(None)
    except StopIteration:
        return None
    return _finish(awaitable, waiting_on)


@types.coroutine
def _finish(coroutine: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
    # What ``await coroutine`` would do, from where start_send left it: hand
    # what it waits on to the awaiting task, and pass the outcome back in.
    while True:
        try:
            outcome = yield waiting_on
        except BaseException as error:
            try:
                waiting_on = coroutine.throw(error)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                waiting_on = coroutine.send(outcome)
            except StopIteration as stop:
                return stop.value


def call_from_sync(
    server_loop: asyncio.AbstractEventLoop | None, function: Callable[..., Coroutine[Any, Any, Any]], *args: Any
) -> Any:
    """
    Run the async ``function`` from sync code and return its result: on
    ``server_loop`` when this process runs one (so the sockets it holds are
    reached directly), else in an event loop of its own (a management
    command, a worker).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        if server_loop is not None and server_loop.is_running():
            return asyncio.run_coroutine_threadsafe(function(*args), server_loop).result()
    # No server loop here, or called on the loop's own thread, which asgiref
    # refuses with a message saying to await the async function instead.
    return async_to_sync(function)(*args)

"""Interop server on the Python RSocket library (`rsocket` 0.4.x).

Serves the interop service table of tests/interop/README.md over TCP, TLS, WebSocket (one
frame per binary message, with the library's aiohttp transport, on PATH only), WebSocket over
TLS, or a Unix socket (addresses and options as Weft's interop_server; see endpoint.py):

    python server.py 127.0.0.1:PORT
    python server.py --cert server.pem --key server.key tls://127.0.0.1:PORT
    python server.py ws://127.0.0.1:PORT/rsocket
    python server.py --cert server.pem --key server.key wss://127.0.0.1:PORT/rsocket
    python server.py unix:/path/to/socket      # replaces a socket file left there

TCP, TLS and the Unix socket all use the library's TransportTCP on asyncio's streams
(`start_server(ssl=...)`, `start_unix_server`); WebSocket over TLS is the aiohttp site with an
SSL context. Prints `listening ADDRESS` once bound, and serves until killed.

Routing uses the library's own RequestRouter / RoutingRequestHandler (routing metadata inside
composite metadata). Streams and channels are written as reactive-streams publishers that send
only within the credit the requester granted, and the channel asks for inbound payloads in a
bounded window, so no buffer here grows without bound.

Library behaviours this server shows on the wire and does NOT hide (the Weft side must cope):
- a PAYLOAD whose data and metadata are both empty is written without the N flag, so the
  answer to an empty request/response is a C-only PAYLOAD (rsocket-py builds each outgoing
  frame afresh and sets N only when there are bytes);
- a stream's last item carries C (no separate COMPLETE frame); N=0 gets a C-only PAYLOAD.
"""

import asyncio
import collections
import logging
import os
import ssl
import stat
import sys

from aiohttp import web
from reactivestreams.publisher import Publisher
from reactivestreams.subscriber import Subscriber
from reactivestreams.subscription import Subscription
from rsocket.extensions.mimetypes import WellKnownMimeTypes
from rsocket.payload import Payload
from rsocket.routing.request_router import RequestRouter
from rsocket.routing.routing_request_handler import RoutingRequestHandler
from rsocket.rsocket_server import RSocketServer
from rsocket.transports.aiohttp_websocket import websocket_handler_factory
from rsocket.transports.tcp import TransportTCP

from endpoint import Endpoint, MissingOption, parse_args, server_tls

# Items sent per event-loop turn by a stream producer before yielding, so a large stream with a
# large credit interleaves with other streams and with the socket writer.
STREAM_BATCH = 32
# Inbound payloads a channel asks for at a time (REQUEST_N); bounds the echo buffer.
CHANNEL_WINDOW = 32


def data_of(payload: Payload) -> bytes:
    return bytes(payload.data) if payload.data else b''


class CountingStream(Publisher, Subscription):
    """Publishes "0".."n-1" within the subscriber's demand, then completes."""

    def __init__(self, n: int):
        self._n = n
        self._next = 0
        self._demand = 0
        self._cancelled = False
        self._done = False
        self._subscriber = None
        self._task = None

    def subscribe(self, subscriber: Subscriber):
        self._subscriber = subscriber
        subscriber.on_subscribe(self)

    def request(self, n: int):
        if self._cancelled or self._done:
            return
        self._demand += n
        if self._n == 0:
            self._done = True
            self._subscriber.on_complete()
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_event_loop().create_task(self._produce())

    async def _produce(self):
        sent_this_turn = 0
        while not self._cancelled and not self._done and self._demand > 0:
            value = str(self._next).encode('ascii')
            self._next += 1
            self._demand -= 1
            last = self._next == self._n
            if last:
                self._done = True
            self._subscriber.on_next(Payload(value), is_complete=last)
            sent_this_turn += 1
            if sent_this_turn >= STREAM_BATCH:
                sent_this_turn = 0
                await asyncio.sleep(0)

    def cancel(self):
        self._cancelled = True
        if self._task is not None:
            self._task.cancel()


class ChannelEcho(Publisher, Subscription, Subscriber):
    """Echoes the first payload and every inbound payload, within the outbound credit.

    Outbound: a Publisher the library subscribes to and feeds the requester's credit.
    Inbound: a Subscriber of the requester's payloads; asks for CHANNEL_WINDOW at a time and
    asks for more only as echoes leave, so at most CHANNEL_WINDOW + 1 payloads wait here.
    """

    def __init__(self, first: Payload):
        self._queue = collections.deque([Payload(data_of(first))])
        self._demand = 0
        self._inbound = None
        self._inbound_done = False
        self._released = 0
        self._outbound = None
        self._finished = False

    # Publisher / Subscription (outbound)
    def subscribe(self, subscriber: Subscriber):
        self._outbound = subscriber
        subscriber.on_subscribe(self)

    def request(self, n: int):
        self._demand += n
        self._drain()

    def cancel(self):
        self._finished = True
        self._queue.clear()
        if self._inbound is not None and not self._inbound_done:
            self._inbound.cancel()

    # Subscriber (inbound)
    def on_subscribe(self, subscription: Subscription):
        self._inbound = subscription
        subscription.request(CHANNEL_WINDOW)

    def on_next(self, value, is_complete=False):
        if self._finished:
            return
        self._queue.append(Payload(data_of(value)))
        if is_complete:
            self._inbound_done = True
        self._drain()

    def on_complete(self):
        self._inbound_done = True
        self._drain()

    def on_error(self, exception):
        self._inbound_done = True
        self._finished = True
        self._queue.clear()

    def _drain(self):
        if self._outbound is None or self._finished:
            return
        while self._demand > 0 and self._queue:
            self._demand -= 1
            self._outbound.on_next(self._queue.popleft())
            self._released += 1
        if self._inbound_done:
            if not self._queue:
                self._finished = True
                self._outbound.on_complete()
        elif self._released >= CHANNEL_WINDOW // 2 and self._inbound is not None:
            self._inbound.request(self._released)
            self._released = 0


class ChannelCount(Publisher, Subscription, Subscriber):
    """`echo.Echo/ChannelCount`: N payloads each way, N in the first inbound one.

    Outbound: "0".."n-1" within the requester's credit, whatever the inbound side does; the
    completion (or ERROR, when the requester sent other than n payloads) only once the
    requester has completed. Inbound: grants exactly the n-1 further payloads due, in two steps
    (about half, then the rest once those arrived), so a requester's last payload uses its last
    credit and its completion must still come.
    """

    def __init__(self, n: int):
        self._n = n
        self._next = 0
        self._demand = 0
        self._received = 1  # the payload inside REQUEST_CHANNEL
        self._granted = 1
        half = (n - 1) // 2
        self._steps = [step for step in (half, n - 1 - half) if step > 0]
        self._inbound = None
        self._inbound_done = False
        self._outbound = None
        self._finished = False

    # Publisher / Subscription (outbound)
    def subscribe(self, subscriber: Subscriber):
        self._outbound = subscriber
        subscriber.on_subscribe(self)

    def request(self, n: int):
        self._demand += n
        self._drain()

    def cancel(self):
        self._finished = True
        if self._inbound is not None and not self._inbound_done:
            self._inbound.cancel()

    # Subscriber (inbound)
    def on_subscribe(self, subscription: Subscription):
        self._inbound = subscription
        self._grant()

    def on_next(self, value, is_complete=False):
        self._received += 1
        if is_complete:
            self._inbound_done = True
        else:
            self._grant()
        self._drain()

    def on_complete(self):
        self._inbound_done = True
        self._drain()

    def on_error(self, exception):
        self._inbound_done = True
        self._finished = True

    def _grant(self):
        if self._received == self._granted and self._steps:
            step = self._steps.pop(0)
            self._granted += step
            self._inbound.request(step)

    def _drain(self):
        if self._outbound is None or self._finished:
            return
        while self._demand > 0 and self._next < self._n:
            self._demand -= 1
            self._outbound.on_next(Payload(str(self._next).encode('ascii')))
            self._next += 1
        if self._next == self._n and self._inbound_done:
            self._finished = True
            if self._received == self._n:
                self._outbound.on_complete()
            else:
                self._outbound.on_error(RuntimeError(
                    'ChannelCount %d: the requester sent %d payloads' % (self._n, self._received)))


def make_router(fire_counts: collections.Counter) -> RequestRouter:
    router = RequestRouter()

    @router.response('echo.Echo/Unary')
    async def unary(payload: Payload):
        return Payload(data_of(payload))

    @router.response('echo.Echo/Error')
    async def error(payload: Payload):
        # RoutingRequestHandler turns an exception into ERROR APPLICATION_ERROR (0x201)
        # whose message is str(exception).
        raise RuntimeError(data_of(payload).decode('utf-8', errors='replace'))

    @router.stream('echo.Echo/ServerStream')
    async def server_stream(payload: Payload):
        text = data_of(payload).decode('ascii', errors='replace')
        if not text.isdigit() or int(text) > 1_000_000:
            raise ValueError('ServerStream wants an ASCII decimal 0..1000000, got %r' % text)
        return CountingStream(int(text))

    @router.channel('echo.Echo/Channel')
    async def channel(payload: Payload):
        echo = ChannelEcho(payload)
        return echo, echo

    @router.channel('echo.Echo/ChannelCount')
    async def channel_count(payload: Payload):
        text = data_of(payload).decode('ascii', errors='replace')
        if not text.isdigit() or not 1 <= int(text) <= 1000:
            raise ValueError('ChannelCount wants an ASCII decimal 1..1000 first, got %r' % text)
        count = ChannelCount(int(text))
        return count, count

    @router.fire_and_forget('echo.Echo/Fire')
    async def fire(payload: Payload):
        fire_counts[data_of(payload)] += 1

    @router.response('echo.Echo/FireCount')
    async def fire_count(payload: Payload):
        key = data_of(payload)
        count = sum(fire_counts.values()) if key == b'' else fire_counts[key]
        return Payload(str(count).encode('ascii'))

    # Anything else: RequestRouter raises RSocketUnknownRoute, which RoutingRequestHandler
    # answers with an ERROR on that stream (fire-and-forget has no stream to answer on).
    return router


async def serve_websocket(endpoint: Endpoint, router, ssl_context):
    """Serves RSocket over WebSocket at ws[s]://HOST:PORT/PATH with the library's aiohttp
    handler (an RSocketServer per WebSocket); any other path is answered 404 by aiohttp."""
    app = web.Application()
    app.add_routes([web.get(endpoint.path, websocket_handler_factory(
        handler_factory=lambda: RoutingRequestHandler(router),
        data_encoding=WellKnownMimeTypes.APPLICATION_OCTET_STREAM,
        metadata_encoding=WellKnownMimeTypes.MESSAGE_RSOCKET_COMPOSITE_METADATA,
    ))])
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, endpoint.host, endpoint.port, ssl_context=ssl_context).start()
    print('listening %s' % endpoint.text, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


async def main(endpoint: Endpoint, options: dict):
    fire_counts = collections.Counter()
    router = make_router(fire_counts)
    try:
        ssl_context = server_tls(options) if endpoint.tls else None
    except (MissingOption, OSError, ssl.SSLError) as exception:
        sys.exit('server error: %s: %s' % (endpoint.text, exception))
    if endpoint.transport.startswith('websocket'):
        await serve_websocket(endpoint, router, ssl_context)
        return
    connections = set()

    def on_connection(reader, writer):
        # The library's TCP transport only reads and writes the streams, so the same one
        # carries TLS (asyncio's SSL transport under the streams) and Unix sockets.
        connections.add(RSocketServer(
            TransportTCP(reader, writer),
            handler_factory=lambda: RoutingRequestHandler(router),
            data_encoding=WellKnownMimeTypes.APPLICATION_OCTET_STREAM,
            metadata_encoding=WellKnownMimeTypes.MESSAGE_RSOCKET_COMPOSITE_METADATA,
        ))

    if endpoint.transport == 'unix':
        # A socket file left by an earlier run would make the bind fail.
        if os.path.exists(endpoint.path) and stat.S_ISSOCK(os.stat(endpoint.path).st_mode):
            os.unlink(endpoint.path)
        server = await asyncio.start_unix_server(on_connection, endpoint.path)
    else:
        server = await asyncio.start_server(on_connection, endpoint.host, endpoint.port, ssl=ssl_context)
    print('listening %s' % endpoint.text, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == '__main__':
    endpoint, options = parse_args('server.py', sys.argv[1:], ('--cert', '--key'))
    # The library logs every application error with a traceback; keep the log readable.
    logging.basicConfig(level=logging.CRITICAL)
    try:
        asyncio.run(main(endpoint, options))
    except KeyboardInterrupt:
        pass

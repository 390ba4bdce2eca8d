"""Interop client on the Python RSocket library (`rsocket` 0.4.x).

Runs the interop checks against any server implementing the interop service table
(tests/interop/README.md), over TCP, TLS, WebSocket (one frame per binary message, with the
library's aiohttp transport), WebSocket over TLS, or a Unix socket (addresses and options as
Weft's interop_client; see endpoint.py):

    python client.py 127.0.0.1:PORT
    python client.py --ca ca.pem tls://127.0.0.1:PORT
    python client.py ws://127.0.0.1:PORT/rsocket
    python client.py --ca ca.pem wss://127.0.0.1:PORT/rsocket
    python client.py unix:/path/to/socket

Over TLS it trusts only the roots in --ca and checks the certificate names 127.0.0.1; a server
it cannot verify is `FAIL connect: ADDRESS: [SSL: CERTIFICATE_VERIFY_FAILED] ...`.

Prints `PASS name`, `FAIL name: why` or `SKIP name: why` per check, then `N passed, N failed`,
and exits non-zero on any failure. Every check is bounded in time.
"""

import asyncio
import logging
import sys
import time
import uuid
from datetime import timedelta

import aiohttp
from reactivestreams.publisher import Publisher
from reactivestreams.subscriber import Subscriber
from reactivestreams.subscription import Subscription
from rsocket.error_codes import ErrorCode
from rsocket.exceptions import RSocketProtocolError
from rsocket.extensions.helpers import composite, route
from rsocket.extensions.mimetypes import WellKnownMimeTypes
from rsocket.helpers import single_transport_provider
from rsocket.payload import Payload
from rsocket.rsocket_client import RSocketClient
from rsocket.transports.aiohttp_websocket import TransportAioHttpClient
from rsocket.transports.tcp import TransportTCP

from endpoint import Endpoint, MissingOption, client_tls, parse_args

CHECK_TIMEOUT = 20.0  # seconds per check
# Seconds for a stream whose requester granted exactly as much credit as it carries to end.
# Nothing in such a stream waits on anything slow: the bound only turns a hang into a failure.
EXACT_TIMEOUT = 5.0
SVC = 'echo.Echo/'


def request(route_name: str, data: bytes) -> Payload:
    return Payload(data, composite(route(SVC + route_name)))


def data_of(payload: Payload) -> bytes:
    return bytes(payload.data) if payload.data else b''


def short(data: bytes, limit: int = 60) -> str:
    text = repr(data)
    return text if len(text) <= limit else text[:limit] + '...(%d bytes)' % len(data)


class CheckFailed(Exception):
    pass


class Skip(Exception):
    pass


def expect(condition: bool, why: str):
    if not condition:
        raise CheckFailed(why)


def describe_error(exception: BaseException) -> str:
    if isinstance(exception, RSocketProtocolError):
        return 'ERROR code 0x%x message %r' % (exception.error_code.value, exception.data)
    if isinstance(exception, RuntimeError):
        # rsocket-py turns ERROR APPLICATION_ERROR into RuntimeError(message).
        return 'ERROR APPLICATION_ERROR message %r' % str(exception)
    return '%s: %s' % (type(exception).__name__, exception)


class Collector(Subscriber):
    """Subscriber with explicit credit: `initial` granted on the request frame, then each of
    `steps` in turn, else `batch`, more (REQUEST_N) each time everything granted so far has
    arrived. `take`: cancel after that many items. Records any item beyond the credit
    granted."""

    def __init__(self, initial: int, batch: int = 0, take: int = 0, steps=()):
        self.granted = initial
        self.batch = batch
        self.take = take
        self.steps = list(steps)
        self.items = []
        self.completed = False
        self.error = None
        self.overrun = None
        self.done = asyncio.Event()
        self.subscription = None

    def on_subscribe(self, subscription):
        self.subscription = subscription

    def on_next(self, value, is_complete=False):
        self.items.append(data_of(value))
        if len(self.items) > self.granted and self.overrun is None:
            self.overrun = 'item %d arrived with only %d granted' % (len(self.items), self.granted)
        if is_complete:
            self.completed = True
            self.done.set()
        elif self.take and len(self.items) == self.take:
            self.subscription.cancel()
            self.done.set()
        elif len(self.items) == self.granted and (self.steps or self.batch):
            more = self.steps.pop(0) if self.steps else self.batch
            self.granted += more
            self.subscription.request(more)

    def on_complete(self):
        self.completed = True
        self.done.set()

    def on_error(self, exception):
        self.error = exception
        self.done.set()

    def outcome(self) -> str:
        if self.error is not None:
            return 'ended with %s after %d items' % (describe_error(self.error), len(self.items))
        return '%d items, completed=%s' % (len(self.items), self.completed)


class ListPublisher(Publisher, Subscription):
    """Publishes the given payloads within the demand the responder grants (REQUEST_N), then
    completes. Completion is never sent before the library has queued REQUEST_CHANNEL."""

    def __init__(self, payloads):
        self._payloads = list(payloads)
        self._index = 0
        self._subscriber = None
        self._completed = False
        self._cancelled = False
        self.max_outstanding_demand = 0
        self._demand = 0

    @property
    def completed(self) -> bool:
        """True once every payload went out and then the completion (this half is done)."""
        return self._completed

    @property
    def sent(self) -> int:
        """Payloads handed to the library so far."""
        return self._index

    def subscribe(self, subscriber):
        self._subscriber = subscriber
        subscriber.on_subscribe(self)
        if not self._payloads:
            asyncio.get_event_loop().call_soon(self._complete)

    def request(self, n):
        self._demand += n
        while self._demand > 0 and self._index < len(self._payloads) and not self._cancelled:
            self._demand -= 1
            self._subscriber.on_next(self._payloads[self._index])
            self._index += 1
        if self._index == len(self._payloads):
            self._complete()

    def _complete(self):
        if not self._completed and not self._cancelled:
            self._completed = True
            self._subscriber.on_complete()

    def cancel(self):
        self._cancelled = True


class Checks:
    def __init__(self, client: RSocketClient):
        self.c = client

    async def rr(self, route_name: str, data: bytes) -> bytes:
        return data_of(await self.c.request_response(request(route_name, data)))

    async def expect_echo(self, data: bytes):
        got = await self.rr('Unary', data)
        expect(got == data, 'sent %s, got back %s' % (short(data), short(got)))

    async def unary_hello(self):
        await self.expect_echo(b'hello')

    async def unary_empty(self):
        await self.expect_echo(b'')

    async def unary_binary(self):
        await self.expect_echo(bytes(range(256)))

    async def unary_large(self):
        await self.expect_echo(bytes((i * 7 + 3) % 256 for i in range(200_000)))

    async def unary_many_in_flight(self):
        count = 200
        sent = [('in-flight-%d' % i).encode() for i in range(count)]
        got = await asyncio.gather(*(self.rr('Unary', d) for d in sent))
        wrong = [i for i in range(count) if got[i] != sent[i]]
        expect(not wrong, '%d of %d answers wrong, first: sent %s got %s' % (
            len(wrong), count, wrong and sent[wrong[0]], wrong and short(got[wrong[0]])))

    async def error_message(self):
        message = 'boom: ünïcødé ✓ 错误 🚀'
        try:
            got = await self.rr('Error', message.encode('utf-8'))
        except RuntimeError as exception:
            # RuntimeError is how rsocket-py surfaces ERROR with APPLICATION_ERROR (0x201).
            expect(str(exception) == message, 'APPLICATION_ERROR message %r, want %r' % (str(exception), message))
            return
        except RSocketProtocolError as exception:
            raise CheckFailed('want APPLICATION_ERROR (0x201), got %s' % describe_error(exception))
        raise CheckFailed('want an ERROR, got a PAYLOAD %s' % short(got))

    async def unknown_route_errors(self):
        for kind in ('request/response', 'request/stream', 'channel'):
            name = 'NoSuchMethod'
            try:
                if kind == 'request/response':
                    got = await self.rr(name, b'x')
                    raise CheckFailed('%s to %s%s answered PAYLOAD %s, want ERROR' % (kind, SVC, name, short(got)))
                collector = Collector(initial=8)
                if kind == 'request/stream':
                    self.c.request_stream(request(name, b'1')).initial_request_n(8).subscribe(collector)
                else:
                    self.c.request_channel(request(name, b'x')).initial_request_n(8).subscribe(collector)
                await collector.done.wait()
                expect(collector.error is not None,
                       '%s to %s%s: %s, want ERROR' % (kind, SVC, name, collector.outcome()))
            except (RuntimeError, RSocketProtocolError):
                pass
        try:
            await self.expect_echo(b'still alive')
        except CheckFailed as failure:
            raise CheckFailed('after the unknown-route errors: %s' % failure)

    def open_stream(self, n: int, initial: int, batch: int = 0, take: int = 0, steps=()) -> Collector:
        collector = Collector(initial, batch, take, steps)
        self.c.request_stream(request('ServerStream', str(n).encode())) \
            .initial_request_n(initial).subscribe(collector)
        return collector

    async def stream(self, n: int, initial: int, batch: int = 0, take: int = 0) -> Collector:
        collector = self.open_stream(n, initial, batch, take)
        await collector.done.wait()
        expect(collector.overrun is None, 'flow control broken: ' + str(collector.overrun))
        expect(collector.error is None, collector.outcome())
        return collector

    def expect_counting(self, collector: Collector, n: int):
        want = [str(i).encode() for i in range(n)]
        if collector.items != want:
            bad = next((i for i in range(min(len(want), len(collector.items)))
                        if collector.items[i] != want[i]), min(len(want), len(collector.items)))
            raise CheckFailed('got %d items, want %d; first difference at index %d: got %s' % (
                len(collector.items), n, bad,
                short(collector.items[bad]) if bad < len(collector.items) else 'nothing'))
        expect(collector.completed, 'all %d items arrived but no COMPLETE' % n)

    async def stream_small(self):
        self.expect_counting(await self.stream(5, initial=2 ** 31 - 1), 5)

    async def stream_zero(self):
        self.expect_counting(await self.stream(0, initial=2 ** 31 - 1), 0)

    async def stream_flow_control(self):
        # Initial credit 2 in REQUEST_STREAM, then REQUEST_N(7) each time the credit is used up.
        self.expect_counting(await self.stream(1000, initial=2, batch=7), 1000)

    async def stream_cancel(self):
        collector = await self.stream(1_000_000, initial=3, take=3)
        expect(collector.items == [b'0', b'1', b'2'], 'want 0,1,2 before cancel, got %s' % collector.items[:5])
        await asyncio.sleep(0.2)
        expect(len(collector.items) == 3, '%d items arrived after CANCEL' % (len(collector.items) - 3))
        try:
            await self.expect_echo(b'after cancel')
        except CheckFailed as failure:
            raise CheckFailed('after CANCEL: %s' % failure)

    def open_channel(self, route_name: str, datas, initial: int, batch: int = 0, steps=()):
        """(collector of what comes back, publisher of datas[1:] or None)."""
        first = request(route_name, datas[0])
        rest = ListPublisher([Payload(d) for d in datas[1:]]) if len(datas) > 1 else None
        collector = Collector(initial, batch, steps=steps)
        # With no publisher rsocket-py sets C on REQUEST_CHANNEL (a one-payload channel).
        self.c.request_channel(first, publisher=rest).initial_request_n(initial).subscribe(collector)
        return collector, rest

    async def channel(self, datas, initial: int, batch: int) -> Collector:
        collector, _ = self.open_channel('Channel', datas, initial, batch)
        await collector.done.wait()
        expect(collector.overrun is None, 'flow control broken: ' + str(collector.overrun))
        expect(collector.error is None, collector.outcome())
        return collector

    async def channel_echo(self):
        datas = [('ch-%d' % i).encode() for i in range(50)]
        collector = await self.channel(datas, initial=4, batch=4)
        expect(collector.items == datas, 'sent ch-0..ch-49, got %d echoes: %s' % (
            len(collector.items), [short(x) for x in collector.items[:6]]))
        expect(collector.completed, 'echoes arrived but no COMPLETE')

    async def channel_single(self):
        collector = await self.channel([b'only'], initial=8, batch=0)
        expect(collector.items == [b'only'], 'want one echo b\'only\', got %s' % collector.items[:5])
        expect(collector.completed, 'echo arrived but no COMPLETE')

    async def exact_end(self, collector: Collector, want, grants):
        """Waits (at most EXACT_TIMEOUT) for a stream whose requester granted exactly
        sum(grants) credit, `want` being what it must carry: the items in order, then its end.
        CANCELs it when it does not end in time, so the connection carries on."""
        try:
            await asyncio.wait_for(collector.done.wait(), EXACT_TIMEOUT)
        except asyncio.TimeoutError:
            collector.subscription.cancel()
            got = collector.items
            order = 'in order' if got == want[:len(got)] else 'NOT in order'
            raise CheckFailed(
                '%d of %d items arrived (%s), then no COMPLETE within %.0f s; credit granted %s = %d, '
                'exactly the items due (a PAYLOAD with only C needs no credit)' % (
                    len(got), len(want), order, EXACT_TIMEOUT, '+'.join(map(str, grants)), sum(grants)))
        expect(collector.overrun is None, 'flow control broken: ' + str(collector.overrun))
        expect(collector.error is None, collector.outcome())
        expect(collector.items == want, 'want %d items %s..%s, got %d: %s' % (
            len(want), short(want[0]), short(want[-1]), len(collector.items),
            [short(x) for x in collector.items[:12]]))
        expect(collector.completed, 'items arrived but no COMPLETE')

    async def exact_stream(self, n: int, grants):
        collector = self.open_stream(n, initial=grants[0], steps=grants[1:])
        await self.exact_end(collector, [str(i).encode() for i in range(n)], grants)

    async def stream_exact_credit(self):
        # 10 items, credit 2 in REQUEST_STREAM, then REQUEST_N(3) and REQUEST_N(5), each once
        # the credit so far is used up: the last item uses the last credit, and the stream must
        # still complete.
        await self.exact_stream(10, [2, 3, 5])

    async def stream_exact_single(self):
        # All the credit in REQUEST_STREAM, exactly the item count.
        await self.exact_stream(10, [10])
        await self.exact_stream(1, [1])

    def expect_sent_all(self, publisher: ListPublisher, count: int):
        expect(publisher.completed, "the requester's half did not complete: %d of %d further payloads "
               'went out (the responder granted credit for them)' % (publisher.sent, count))

    async def channel_exact_credit(self):
        # Echo channel, 10 payloads; the echoes get credit 2 in REQUEST_CHANNEL, then
        # REQUEST_N(3) and REQUEST_N(5): exactly the 10 echoes. Both halves must complete.
        datas = [('exact-%d' % i).encode() for i in range(10)]
        grants = [2, 3, 5]
        collector, publisher = self.open_channel('Channel', datas, grants[0], steps=grants[1:])
        await self.exact_end(collector, datas, grants)
        self.expect_sent_all(publisher, len(datas) - 1)

    async def channel_count_exact(self):
        # ChannelCount: 10 payloads each way. The responder's "0".."9" get credit 2, 3, 5; the
        # responder may grant exactly the 9 further payloads (the Python and JS servers do). The
        # responder completes only after the requester has, with all 10 (else ERROR), so the
        # COMPLETE seen here means both halves completed.
        n = 10
        datas = [str(n).encode()] + [('count-%d' % i).encode() for i in range(1, n)]
        grants = [2, 3, 5]
        collector, publisher = self.open_channel('ChannelCount', datas, grants[0], steps=grants[1:])
        await self.exact_end(collector, [str(i).encode() for i in range(n)], grants)
        self.expect_sent_all(publisher, n - 1)

    async def fire_and_forget_count(self):
        key = ('py-fire-%s' % uuid.uuid4().hex).encode()
        fires = 10
        for _ in range(fires):
            await self.c.fire_and_forget(request('Fire', key))
        deadline = time.monotonic() + 10
        count = None
        while time.monotonic() < deadline:
            count = await self.rr('FireCount', key)
            if count == str(fires).encode():
                break
            await asyncio.sleep(0.05)
        expect(count == str(fires).encode(), 'FireCount(%s) = %s after 10 s, want %d' % (key, count, fires))
        total = await self.rr('FireCount', b'')
        expect(total.isdigit() and int(total) >= fires, 'FireCount("") = %s, want >= %d' % (short(total), fires))


CHECK_NAMES = [
    'unary_hello', 'unary_empty', 'unary_binary', 'unary_large', 'unary_many_in_flight',
    'error_message', 'unknown_route_errors',
    'stream_small', 'stream_zero', 'stream_flow_control', 'stream_cancel',
    'stream_exact_credit', 'stream_exact_single',
    'channel_echo', 'channel_single', 'channel_exact_credit', 'channel_count_exact',
    'fire_and_forget_count',
]


async def open_transport(endpoint: Endpoint, options: dict, closers: list):
    """The library's transport to `endpoint`, connected (within 10 s; over TLS, the handshake
    done and the server's certificate verified); what must be closed after the client goes into
    `closers`."""
    ssl_context = client_tls(options) if endpoint.tls else None
    if endpoint.transport.startswith('websocket'):
        # Connected here rather than by TransportAioHttpClient(url), so that a failure to
        # connect is reported (and bounded) like TCP's instead of surfacing inside the client.
        session = aiohttp.ClientSession()
        closers.append(session.close)
        tls = {'ssl': ssl_context} if ssl_context else {}
        websocket = await asyncio.wait_for(session.ws_connect(endpoint.url, **tls), 10)
        closers.append(websocket.close)
        return TransportAioHttpClient(websocket=websocket)
    # The library's TCP transport only reads and writes asyncio's streams, so the same one
    # carries TLS and Unix sockets.
    if endpoint.transport == 'unix':
        connecting = asyncio.open_unix_connection(endpoint.path)
    else:
        connecting = asyncio.open_connection(endpoint.host, endpoint.port, ssl=ssl_context)
    reader, writer = await asyncio.wait_for(connecting, 10)
    return TransportTCP(reader, writer)


async def main(endpoint: Endpoint, options: dict) -> int:
    passed = failed = 0
    closers = []
    try:
        transport = await open_transport(endpoint, options, closers)
    except (OSError, asyncio.TimeoutError, aiohttp.ClientError, MissingOption) as exception:
        # ssl.SSLError (a failed handshake or verification) is an OSError.
        why = str(exception) or type(exception).__name__
        print('FAIL connect: %s: %s' % (endpoint.text, why), flush=True)
        print('0 passed, 1 failed', flush=True)
        for close in reversed(closers):
            await close()
        return 1
    client = RSocketClient(
        single_transport_provider(transport),
        data_encoding=WellKnownMimeTypes.APPLICATION_OCTET_STREAM,
        metadata_encoding=WellKnownMimeTypes.MESSAGE_RSOCKET_COMPOSITE_METADATA,
        keep_alive_period=timedelta(seconds=5),
        max_lifetime_period=timedelta(seconds=60),
    )
    async with client:
        checks = Checks(client)
        for name in CHECK_NAMES:
            try:
                await asyncio.wait_for(getattr(checks, name)(), CHECK_TIMEOUT)
            except Skip as skip:
                print('SKIP %s: %s' % (name, skip), flush=True)
                continue
            except CheckFailed as failure:
                print('FAIL %s: %s' % (name, failure), flush=True)
                failed += 1
                continue
            except asyncio.TimeoutError:
                print('FAIL %s: no answer within %.0f s' % (name, CHECK_TIMEOUT), flush=True)
                failed += 1
                continue
            except Exception as exception:  # an error where a value was expected
                print('FAIL %s: %s' % (name, describe_error(exception)), flush=True)
                failed += 1
                continue
            print('PASS %s' % name, flush=True)
            passed += 1
    for close in reversed(closers):
        await close()
    print('%d passed, %d failed' % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == '__main__':
    endpoint, options = parse_args('client.py', sys.argv[1:], ('--ca',))
    logging.basicConfig(level=logging.CRITICAL)
    sys.exit(asyncio.run(main(endpoint, options)))

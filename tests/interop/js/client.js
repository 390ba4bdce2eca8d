'use strict';
// Interop client on the JavaScript RSocket library (rsocket-core / rsocket-tcp-client /
// rsocket-websocket-client 0.0.x).
//
//   node client.js 127.0.0.1:PORT                              # TCP
//   node client.js --ca ca.pem tls://127.0.0.1:PORT              # TLS
//   node client.js ws://127.0.0.1:PORT/rsocket                 # WebSocket (a frame per message)
//   node client.js --ca ca.pem wss://127.0.0.1:PORT/rsocket       # WebSocket over TLS
//   node client.js unix:/path/to/socket                        # Unix socket, framed as TCP
//
// Addresses and options as Weft's interop_client (common.js). Over TLS it trusts only the
// roots in --ca and checks the certificate names 127.0.0.1; a server it cannot verify is
// `FAIL connect: ADDRESS: unable to verify the first certificate` (and no check runs). TCP and
// Unix sockets use RSocketTcpClient, TLS the library's RSocketTcpConnection on a socket
// connected here (see tlsConnection), WebSocket and WebSocket over TLS RSocketWebSocketClient.
//
// Runs the interop checks against any server implementing the interop service table
// (tests/interop/README.md): prints `PASS name`, `FAIL name: why` or `SKIP name: why` per
// check, then `N passed, N failed`; exits non-zero on any failure. Every check is bounded.
//
// Library behaviours seen from this side:
// - a request/response answered by a PAYLOAD without N (C only) never resolves: rsocket-js
//   only delivers a value on N and ignores completion for request/response. The check then
//   fails by its time limit, naming that cause.
// - items beyond the credit granted are dropped by rsocket-flowable with a console.warn; this
//   client catches that warning and fails the check with "flow control broken".
// - as a channel requester the library never sets C on REQUEST_CHANNEL: a one-payload channel
//   goes out as REQUEST_CHANNEL then a C-only PAYLOAD.

const {RSocketClient, FLAGS, FRAME_TYPES} = require('rsocket-core');
const tls = require('tls');
const {default: RSocketTcpClient, RSocketTcpConnection} = require('rsocket-tcp-client');
const RSocketWebSocketClient = require('rsocket-websocket-client').default;
// Node 20 has no global WebSocket: the library takes a constructor (`wsCreator`), and `ws`
// (which rsocket-websocket-server uses too) provides the browser's API.
const WebSocket = require('ws');
const {Flowable} = require('rsocket-flowable');
const {
  BufferEncoders,
  SETUP_DATA_MIME,
  SETUP_METADATA_MIME,
  SVC,
  routeMetadata,
  parseArgs,
  readOption,
  toBuffer,
} = require('./common');

const CHECK_TIMEOUT_MS = 20000;
// For a stream whose requester granted exactly as much credit as it carries to end. Nothing in
// such a stream waits on anything slow: the bound only turns a hang into a failure.
const EXACT_TIMEOUT_MS = 5000;
const MAX_REQUEST_N = 0x7fffffff;

class CheckFailed extends Error {}

function expect(condition, why) {
  if (!condition) {
    throw new CheckFailed(why);
  }
}

const request = (route, data) => ({data: Buffer.from(data), metadata: routeMetadata(SVC + route)});

function short(buf, limit = 60) {
  const text = JSON.stringify(buf.toString('latin1'));
  return text.length <= limit ? text : `${text.slice(0, limit)}...(${buf.length} bytes)`;
}

function describeError(error) {
  if (error && error.source && typeof error.source.code === 'number') {
    return `ERROR code 0x${error.source.code.toString(16)} message ${JSON.stringify(error.source.message)}`;
  }
  return String(error && error.message ? error.message : error);
}

// Flow-control violations: rsocket-flowable drops an item that exceeds the credit and says so
// through console.warn. Record it so the running check can fail on it.
let flowWarnings = [];
const originalWarn = console.warn;
console.warn = (...args) => {
  const text = args.map(String).join(' ');
  if (text.includes('Invalid call to onNext')) {
    flowWarnings.push(text);
    return;
  }
  originalWarn(...args);
};

// Subscriber with explicit credit: `initial` on the request frame, then each of `steps` in
// turn, else `batch`, more (REQUEST_N) each time everything granted has arrived; `take`:
// cancel after that many.
function collect(flowable, {initial, batch = 0, take = 0, steps = []}) {
  const state = {items: [], completed: false, error: null, granted: initial, ended: false, subscription: null};
  const more = [...steps];
  state.done = new Promise(resolve => {
    let subscription;
    flowable.subscribe({
      onSubscribe: s => {
        subscription = s;
        state.subscription = s;
        s.request(initial);
      },
      onNext: payload => {
        state.items.push(toBuffer(payload.data));
        if (take && state.items.length === take) {
          subscription.cancel();
          resolve();
        } else if (state.items.length === state.granted && (more.length || batch)) {
          const n = more.length ? more.shift() : batch;
          state.granted += n;
          subscription.request(n);
        }
      },
      onComplete: () => {
        state.completed = true;
        state.ended = true;
        resolve();
      },
      onError: error => {
        state.error = error;
        state.ended = true;
        resolve();
      },
    });
  });
  state.outcome = () =>
    state.error
      ? `ended with ${describeError(state.error)} after ${state.items.length} items`
      : `${state.items.length} items, completed=${state.completed}`;
  return state;
}

// Publishes `payloads` within the demand the library passes on (the first goes into
// REQUEST_CHANNEL, the rest as the responder sends REQUEST_N), then completes. `progress`
// (optional) records how many went out and whether the completion did.
function listFlowable(payloads, progress = {}) {
  progress.sent = 0;
  progress.completed = false;
  return new Flowable(subscriber => {
    let index = 0;
    let cancelled = false;
    let completed = false;
    subscriber.onSubscribe({
      cancel: () => {
        cancelled = true;
      },
      request: n => {
        while (!cancelled && n > 0 && index < payloads.length) {
          n--;
          subscriber.onNext(payloads[index++]);
          progress.sent = index;
        }
        if (!cancelled && !completed && index === payloads.length) {
          completed = true;
          progress.completed = true;
          subscriber.onComplete();
        }
      },
    });
  }, MAX_REQUEST_N);
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

function makeChecks(socket) {
  // Cancel functions of the request/responses still waiting for an answer.
  const pending = new Set();
  const rr = (route, data) =>
    new Promise((resolve, reject) => {
      let cancel;
      socket.requestResponse(request(route, data)).subscribe({
        onComplete: payload => {
          pending.delete(cancel);
          resolve(toBuffer(payload.data));
        },
        onError: error => {
          pending.delete(cancel);
          reject(error);
        },
        onSubscribe: c => {
          cancel = c;
          pending.add(c);
        },
      });
    });
  const expectEcho = async data => {
    const got = await rr('Unary', data);
    expect(got.equals(Buffer.from(data)), `sent ${short(Buffer.from(data))}, got back ${short(got)}`);
  };
  const stream = async (n, options) => {
    const state = collect(socket.requestStream(request('ServerStream', String(n))), options);
    await state.done;
    expect(state.error === null, state.outcome());
    return state;
  };
  const expectCounting = (state, n) => {
    const got = state.items.map(b => b.toString('latin1'));
    let bad = -1;
    for (let i = 0; i < Math.max(n, got.length); i++) {
      if (got[i] !== String(i) || i >= n) {
        bad = i;
        break;
      }
    }
    expect(bad === -1, `got ${got.length} items, want ${n}; first difference at index ${bad}: got ${JSON.stringify(got[bad])}`);
    expect(state.completed, `all ${n} items arrived but no COMPLETE`);
  };
  const openChannel = (route, datas, options, progress) => {
    const payloads = datas.map((d, i) => (i === 0 ? request(route, d) : {data: Buffer.from(d)}));
    return collect(socket.requestChannel(listFlowable(payloads, progress)), options);
  };
  const channel = async (datas, options) => {
    const state = openChannel('Channel', datas, options);
    await state.done;
    expect(state.error === null, state.outcome());
    return state;
  };
  // Waits (at most EXACT_TIMEOUT_MS) for a stream whose requester granted exactly sum(grants)
  // credit, `want` being what it must carry: the items in order, then its end. CANCELs it when
  // it does not end in time, so the connection carries on.
  const exactEnd = async (state, want, grants) => {
    let timer;
    await Promise.race([state.done, new Promise(resolve => (timer = setTimeout(resolve, EXACT_TIMEOUT_MS)))]);
    clearTimeout(timer);
    const got = state.items.map(b => b.toString('latin1'));
    if (!state.ended) {
      state.subscription.cancel();
      const order = got.every((g, i) => g === want[i]) ? 'in order' : 'NOT in order';
      throw new CheckFailed(
        `${got.length} of ${want.length} items arrived (${order}), then no COMPLETE within ${EXACT_TIMEOUT_MS / 1000} s; ` +
          `credit granted ${grants.join('+')} = ${grants.reduce((a, b) => a + b, 0)}, exactly the items due ` +
          '(a PAYLOAD with only C needs no credit)',
      );
    }
    expect(state.error === null, state.outcome());
    expect(got.join(',') === want.join(','), `want ${want.length} items ${want[0]}..${want[want.length - 1]}, got ${got.length}: ${got.slice(0, 12)}`);
    expect(state.completed, 'items arrived but no COMPLETE');
  };
  const exactStream = async (n, grants) => {
    const state = collect(socket.requestStream(request('ServerStream', String(n))), {initial: grants[0], steps: grants.slice(1)});
    await exactEnd(state, Array.from({length: n}, (_, i) => String(i)), grants);
  };
  const expectSentAll = (progress, count) =>
    expect(progress.completed, `the requester's half did not complete: ${progress.sent} of ${count} payloads went out (the responder granted credit for them)`);

  return {
    cancelPending() {
      pending.forEach(c => c());
      pending.clear();
    },
    async unary_hello() {
      await expectEcho('hello');
    },
    async unary_empty() {
      await expectEcho('');
    },
    async unary_binary() {
      await expectEcho(Buffer.from([...Array(256).keys()]));
    },
    async unary_large() {
      await expectEcho(Buffer.from(Array.from({length: 200000}, (_, i) => (i * 7 + 3) % 256)));
    },
    async unary_many_in_flight() {
      const count = 200;
      const sent = Array.from({length: count}, (_, i) => `in-flight-${i}`);
      const got = await Promise.all(sent.map(d => rr('Unary', d)));
      const wrong = sent.map((d, i) => i).filter(i => got[i].toString('latin1') !== sent[i]);
      expect(wrong.length === 0, `${wrong.length} of ${count} answers wrong, first: sent ${sent[wrong[0]]} got ${wrong.length && short(got[wrong[0]])}`);
    },
    async error_message() {
      const message = 'boom: ünïcødé ✓ 错误 🚀';
      let got;
      try {
        got = await rr('Error', Buffer.from(message, 'utf8'));
      } catch (error) {
        expect(error.source && error.source.code === 0x201, `want APPLICATION_ERROR (0x201), got ${describeError(error)}`);
        expect(error.source.message === message, `APPLICATION_ERROR message ${JSON.stringify(error.source.message)}, want ${JSON.stringify(message)}`);
        return;
      }
      throw new CheckFailed(`want an ERROR, got a PAYLOAD ${short(got)}`);
    },
    async unknown_route_errors() {
      const name = 'NoSuchMethod';
      try {
        const got = await rr(name, 'x');
        throw new CheckFailed(`request/response to ${SVC}${name} answered PAYLOAD ${short(got)}, want ERROR`);
      } catch (error) {
        if (error instanceof CheckFailed) {
          throw error;
        }
      }
      const s = collect(socket.requestStream(request(name, '1')), {initial: 8});
      await s.done;
      expect(s.error !== null, `request/stream to ${SVC}${name}: ${s.outcome()}, want ERROR`);
      const c = collect(socket.requestChannel(listFlowable([request(name, 'x')])), {initial: 8});
      await c.done;
      expect(c.error !== null, `channel to ${SVC}${name}: ${c.outcome()}, want ERROR`);
      try {
        await expectEcho('still alive');
      } catch (error) {
        throw new CheckFailed(`after the unknown-route errors: ${error.message}`);
      }
    },
    async stream_small() {
      expectCounting(await stream(5, {initial: MAX_REQUEST_N}), 5);
    },
    async stream_zero() {
      expectCounting(await stream(0, {initial: MAX_REQUEST_N}), 0);
    },
    async stream_flow_control() {
      // Initial credit 2 in REQUEST_STREAM, then REQUEST_N(7) each time the credit is used up.
      expectCounting(await stream(1000, {initial: 2, batch: 7}), 1000);
    },
    async stream_cancel() {
      const state = await stream(1000000, {initial: 3, take: 3});
      const got = state.items.map(b => b.toString('latin1'));
      expect(got.join(',') === '0,1,2', `want 0,1,2 before cancel, got ${got.slice(0, 5)}`);
      await sleep(200);
      expect(state.items.length === 3, `${state.items.length - 3} items arrived after CANCEL`);
      try {
        await expectEcho('after cancel');
      } catch (error) {
        throw new CheckFailed(`after CANCEL: ${error.message}`);
      }
    },
    async channel_echo() {
      const datas = Array.from({length: 50}, (_, i) => `ch-${i}`);
      const state = await channel(datas, {initial: 4, batch: 4});
      const got = state.items.map(b => b.toString('latin1'));
      expect(got.join(',') === datas.join(','), `sent ch-0..ch-49, got ${got.length} echoes: ${got.slice(0, 6)}`);
      expect(state.completed, 'echoes arrived but no COMPLETE');
    },
    async stream_exact_credit() {
      // 10 items, credit 2 in REQUEST_STREAM, then REQUEST_N(3) and REQUEST_N(5), each once the
      // credit so far is used up: the last item uses the last credit, and the stream must
      // still complete.
      await exactStream(10, [2, 3, 5]);
    },
    async stream_exact_single() {
      // All the credit in REQUEST_STREAM, exactly the item count.
      await exactStream(10, [10]);
      await exactStream(1, [1]);
    },
    async channel_exact_credit() {
      // Echo channel, 10 payloads; the echoes get credit 2 in REQUEST_CHANNEL, then
      // REQUEST_N(3) and REQUEST_N(5): exactly the 10 echoes. Both halves must complete.
      const datas = Array.from({length: 10}, (_, i) => `exact-${i}`);
      const grants = [2, 3, 5];
      const progress = {};
      const state = openChannel('Channel', datas, {initial: grants[0], steps: grants.slice(1)}, progress);
      await exactEnd(state, datas, grants);
      expectSentAll(progress, datas.length);
    },
    async channel_count_exact() {
      // ChannelCount: 10 payloads each way. The responder's "0".."9" get credit 2, 3, 5; the
      // responder may grant exactly the 9 further payloads (the Python and JS servers do). The
      // responder completes only after the requester has, with all 10 (else ERROR), so the
      // COMPLETE seen here means both halves completed.
      const n = 10;
      const datas = [String(n), ...Array.from({length: n - 1}, (_, i) => `count-${i + 1}`)];
      const grants = [2, 3, 5];
      const progress = {};
      const state = openChannel('ChannelCount', datas, {initial: grants[0], steps: grants.slice(1)}, progress);
      await exactEnd(state, Array.from({length: n}, (_, i) => String(i)), grants);
      expectSentAll(progress, n);
    },
    async channel_single() {
      const state = await channel(['only'], {initial: 8});
      const got = state.items.map(b => b.toString('latin1'));
      expect(got.join(',') === 'only', `want one echo "only", got ${JSON.stringify(got.slice(0, 5))}`);
      expect(state.completed, 'echo arrived but no COMPLETE');
    },
    async fire_and_forget_count() {
      const key = `js-fire-${process.pid}-${Date.now()}-${Math.random().toString(16).slice(2)}`;
      const fires = 10;
      for (let i = 0; i < fires; i++) {
        socket.fireAndForget(request('Fire', key));
      }
      const deadline = Date.now() + 10000;
      let count = null;
      while (Date.now() < deadline) {
        count = (await rr('FireCount', key)).toString('latin1');
        if (count === String(fires)) {
          break;
        }
        await sleep(50);
      }
      expect(count === String(fires), `FireCount(${key}) = ${JSON.stringify(count)} after 10 s, want ${fires}`);
      const total = (await rr('FireCount', '')).toString('latin1');
      expect(/^[0-9]+$/.test(total) && Number(total) >= fires, `FireCount("") = ${JSON.stringify(total)}, want >= ${fires}`);
    },
  };
}

const CHECK_NAMES = [
  'unary_hello', 'unary_empty', 'unary_binary', 'unary_large', 'unary_many_in_flight',
  'error_message', 'unknown_route_errors',
  'stream_small', 'stream_zero', 'stream_flow_control', 'stream_cancel',
  'stream_exact_credit', 'stream_exact_single',
  'channel_echo', 'channel_single', 'channel_exact_credit', 'channel_count_exact',
  'fire_and_forget_count',
];

// Frames of note seen during the running check, to explain a failure (read-only tap).
let completeOnlyPayloads = 0;
function tap(transport) {
  const receive = transport.receive.bind(transport);
  transport.receive = () =>
    receive().map(frame => {
      if (frame.type === FRAME_TYPES.PAYLOAD && frame.flags & FLAGS.COMPLETE && !(frame.flags & FLAGS.NEXT)) {
        completeOnlyPayloads++;
      }
      return frame;
    });
  return transport;
}

// The library's client transport for the address, resolved once it may carry SETUP:
// RSocketTcpClient (TCP; a Unix socket is net.connect's `path`), RSocketTcpConnection on a TLS
// socket (see tlsConnection), or RSocketWebSocketClient on a `ws` WebSocket (with --ca's roots
// for wss://: `ws` opens only after the handshake, so a failed one is a failed connect).
async function clientTransport(address, options) {
  switch (address.transport) {
    case 'tcp':
      return new RSocketTcpClient({host: address.host, port: address.port}, BufferEncoders);
    case 'unix':
      return new RSocketTcpClient({path: address.path}, BufferEncoders);
    case 'tls':
      return tlsConnection(address, options);
    default: {
      const wsOptions = address.tls ? {ca: readOption(options, '--ca')} : {};
      return new RSocketWebSocketClient({url: address.url, wsCreator: url => new WebSocket(url, wsOptions)}, BufferEncoders);
    }
  }
}

// Over TLS: a socket connected here, trusting only --ca (tls.connect checks the certificate
// names 127.0.0.1), handed to the library's RSocketTcpConnection once its handshake is done.
// The library's RSocketTlsClient (the same RSocketTcpConnection framing over tls.connect)
// reports itself connected on the TCP `connect` event, before the handshake, so an unverified
// server would show up as the first check's error and the rest as timeouts instead of as a
// failed connect. The connection is open already: RSocketClient's connect() finds it CONNECTED
// and its own connect() (which would throw "not supported") has nothing to do.
function tlsConnection(address, options) {
  const ca = readOption(options, '--ca');
  return new Promise((resolve, reject) => {
    const socket = tls.connect({host: address.host, port: address.port, ca});
    socket.once('error', reject);
    socket.once('secureConnect', () => {
      socket.removeListener('error', reject);
      const connection = new RSocketTcpConnection(socket, BufferEncoders);
      connection.connect = () => {};
      resolve(connection);
    });
  });
}

async function openClient(address, options) {
  const client = new RSocketClient({
    setup: {
      dataMimeType: SETUP_DATA_MIME,
      metadataMimeType: SETUP_METADATA_MIME,
      keepAlive: 5000,
      lifetime: 60000,
    },
    transport: tap(await clientTransport(address, options)),
  });
  return new Promise((resolve, reject) => {
    client.connect().subscribe({
      onComplete: socket => resolve({client, socket}),
      onError: reject,
    });
  });
}

// The client, connected (over TLS: verified) within 10 s.
async function connect(address, options) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('no connection within 10 s')), 10000);
  });
  try {
    return await Promise.race([openClient(address, options), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

async function main() {
  const {address, options} = parseArgs(process.argv.slice(2), ['--ca']);
  let passed = 0;
  let failed = 0;
  let conn;
  try {
    conn = await connect(address, options);
  } catch (error) {
    console.log(`FAIL connect: ${address.text}: ${error.message}`);
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
  const checks = makeChecks(conn.socket);
  for (const name of CHECK_NAMES) {
    flowWarnings = [];
    completeOnlyPayloads = 0;
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => {
        let why = `no answer within ${CHECK_TIMEOUT_MS / 1000} s`;
        if (completeOnlyPayloads > 0) {
          why += `; ${completeOnlyPayloads} PAYLOAD frame(s) with C but no N arrived meanwhile, and rsocket-js resolves a request/response only on a PAYLOAD with N`;
        }
        reject(new CheckFailed(why));
      }, CHECK_TIMEOUT_MS);
    });
    try {
      await Promise.race([checks[name](), timeout]);
      if (flowWarnings.length) {
        throw new CheckFailed(`flow control broken: an item arrived beyond the credit granted (${flowWarnings.length} dropped by rsocket-flowable)`);
      }
      console.log(`PASS ${name}`);
      passed++;
    } catch (error) {
      console.log(`FAIL ${name}: ${error instanceof CheckFailed ? error.message : describeError(error)}`);
      failed++;
      checks.cancelPending();
    } finally {
      clearTimeout(timer);
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  conn.client.close();
  process.exit(failed ? 1 : 0);
}

main();

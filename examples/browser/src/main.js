// The browser example's page script: calls `echo.Echo` (the interop service of
// tests/interop/README.md) on a Weft server with rsocket-js 0.0.27 over RSocket's WebSocket
// transport, one call per interaction model, and shows each result in the page's table.
//
// Bundled by build.sh (esbuild) into work/dist/bundle.js, which browser_server serves.
//
// Wire conventions (what a Weft server expects of any RSocket peer): SETUP announces metadata
// `message/x.rsocket.composite-metadata.v0` and data `application/octet-stream`; each request's
// metadata is composite metadata holding one routing entry, `echo.Echo/Method`; data is the
// message's bytes (here UTF-8 text).
//
// The page states its progress for anyone watching it (test.js does): each row of the table gets
// `data-state` `ok` or `error` with the result in its `.result` cell, and the body gets
// `data-done="true"` once every call has finished (`data-failed` counts the rows in error).

import {
  APPLICATION_OCTET_STREAM,
  BufferEncoders,
  MESSAGE_RSOCKET_COMPOSITE_METADATA,
  MESSAGE_RSOCKET_ROUTING,
  RSocketClient,
  UTF8Encoder,
  encodeCompositeMetadata,
  encodeRoute,
} from 'rsocket-core';
import {Flowable} from 'rsocket-flowable';
import RSocketWebSocketClient from 'rsocket-websocket-client';

const SVC = 'echo.Echo/';
// Every call's time limit: a server that never answers shows as an error, not a spinner.
const CALL_TIMEOUT_MS = 10000;
// How long fire-and-forget may take to be counted: it has no answer, so the page asks.
const FIRE_WAIT_MS = 5000;
const MAX_REQUEST_N = 0x7fffffff;

// Data as UTF-8 strings (what the page shows); metadata as bytes (composite metadata is binary).
const ENCODERS = {...BufferEncoders, data: UTF8Encoder};

// One request's payload: `data` routed to `echo.Echo/<method>`.
function request(method, data) {
  return {data, metadata: encodeCompositeMetadata([[MESSAGE_RSOCKET_ROUTING, encodeRoute(SVC + method)]])};
}

// Rejects after CALL_TIMEOUT_MS, calling `cancel` first.
function bounded(what, run, cancel = () => {}) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cancel();
      reject(new Error(`${what}: no answer within ${CALL_TIMEOUT_MS / 1000} s`));
    }, CALL_TIMEOUT_MS);
    run(
      value => {
        clearTimeout(timer);
        resolve(value);
      },
      error => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

function connect(url) {
  const client = new RSocketClient({
    setup: {
      dataMimeType: APPLICATION_OCTET_STREAM.string,
      metadataMimeType: MESSAGE_RSOCKET_COMPOSITE_METADATA.string,
      keepAlive: 10000,
      lifetime: 30000,
    },
    transport: new RSocketWebSocketClient({url}, ENCODERS),
  });
  return bounded(`connecting to ${url}`, (resolve, reject) =>
    client.connect().subscribe({onComplete: resolve, onError: reject}),
  );
}

// The answer's data to a request/response.
function unary(socket, method, data) {
  let cancel = () => {};
  return bounded(
    method,
    (resolve, reject) =>
      socket.requestResponse(request(method, data)).subscribe({
        onComplete: payload => resolve(payload.data),
        onError: reject,
        onSubscribe: c => (cancel = c),
      }),
    () => cancel(),
  );
}

// Every item's data of a request/stream or channel, once it completes. All the credit it can
// use is granted at once: these streams are short.
function collect(flowable, what) {
  let subscription = null;
  return bounded(
    what,
    (resolve, reject) => {
      const items = [];
      flowable.subscribe({
        onSubscribe: s => {
          subscription = s;
          s.request(MAX_REQUEST_N);
        },
        onNext: payload => items.push(payload.data),
        onComplete: () => resolve(items),
        onError: reject,
      });
    },
    () => subscription && subscription.cancel(),
  );
}

// A Flowable of `payloads` that sends only what its subscriber (the channel) asks for.
function listFlowable(payloads) {
  return new Flowable(subscriber => {
    let next = 0;
    let done = false;
    subscriber.onSubscribe({
      cancel: () => (done = true),
      request: n => {
        while (!done && n-- > 0 && next < payloads.length) {
          subscriber.onNext(payloads[next++]);
        }
        if (!done && next === payloads.length) {
          done = true;
          subscriber.onComplete();
        }
      },
    });
  });
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

// Runs `call` for the table row `id`, showing what was sent and what came back.
async function row(id, sent, call) {
  const tr = document.getElementById(id);
  tr.querySelector('.sent').textContent = sent;
  tr.querySelector('.result').textContent = '…';
  tr.querySelector('.state').textContent = '';
  delete tr.dataset.state;
  try {
    tr.querySelector('.result').textContent = await call();
    tr.dataset.state = 'ok';
    tr.querySelector('.state').textContent = 'ok';
  } catch (error) {
    tr.querySelector('.result').textContent = String(error && error.message ? error.message : error);
    tr.dataset.state = 'error';
    tr.querySelector('.state').textContent = 'error';
  }
}

// The calls of one run, one per interaction model.
const CALLS = [
  // request/response: the data comes back unchanged.
  ['unary', 'hello from the browser', socket => () => unary(socket, 'Unary', 'hello from the browser')],
  // request/stream: "0".."9", in order, then complete.
  [
    'stream',
    '10 (items wanted)',
    socket => async () => (await collect(socket.requestStream(request('ServerStream', '10')), 'ServerStream')).join(','),
  ],
  // channel: each payload echoed; the route rides in the first payload's metadata.
  [
    'channel',
    'alpha,beta,gamma',
    socket => async () => {
      const payloads = ['alpha', 'beta', 'gamma'].map((word, i) => (i === 0 ? request('Channel', word) : {data: word}));
      return (await collect(socket.requestChannel(listFlowable(payloads)), 'Channel')).join(',');
    },
  ],
  // fire-and-forget: three fires under a key of this run's own, then FireCount until the
  // server has counted all three (it answers nothing to a fire, so this is how the page knows).
  [
    'fire',
    '3 fires',
    socket => async () => {
      const key = `browser-${Date.now()}-${Math.random().toString(16).slice(2)}`;
      for (let i = 0; i < 3; i++) {
        socket.fireAndForget(request('Fire', key));
      }
      const deadline = Date.now() + FIRE_WAIT_MS;
      let count = '';
      while (Date.now() < deadline) {
        count = await unary(socket, 'FireCount', key);
        if (count === '3') {
          return `counted ${count}`;
        }
        await sleep(50);
      }
      throw new Error(`FireCount = ${JSON.stringify(count)} after ${FIRE_WAIT_MS / 1000} s, want 3`);
    },
  ],
  // An application error: the server's ERROR message reaches the page as the call's error.
  [
    'error',
    'no such thing',
    socket => async () => {
      try {
        const data = await unary(socket, 'Error', 'no such thing');
        throw new Error(`answered ${JSON.stringify(data)}, want an ERROR`);
      } catch (error) {
        if (error.source && error.source.code === 0x201) {
          return `ERROR 0x201: ${error.source.message}`;
        }
        throw error;
      }
    },
  ],
];

async function runAll(socket) {
  document.body.dataset.done = 'false';
  document.getElementById('status').textContent = 'running…';
  for (const [id, sent, call] of CALLS) {
    await row(id, sent, call(socket));
  }
  const failed = document.querySelectorAll('tr[data-state="error"]').length;
  document.body.dataset.failed = String(failed);
  document.body.dataset.done = 'true';
  document.getElementById('status').textContent = failed ? `${failed} call(s) failed` : 'all calls answered';
}

async function main() {
  const meta = document.querySelector('meta[name="weft-rsocket-url"]');
  // Served as a file or by another server, the placeholder is still there: then the default
  // endpoint of browser_server.
  const url = meta && meta.content.startsWith('ws') ? meta.content : 'ws://127.0.0.1:8081/rsocket';
  const connection = document.getElementById('connection');
  connection.textContent = `connecting to ${url}…`;
  let socket;
  try {
    socket = await connect(url);
  } catch (error) {
    connection.textContent = `cannot connect to ${url}: ${error.message}`;
    document.body.dataset.failed = String(CALLS.length);
    document.body.dataset.done = 'true';
    document.getElementById('status').textContent = 'not connected';
    return;
  }
  connection.textContent = url;
  const again = document.getElementById('again');
  again.addEventListener('click', async () => {
    again.disabled = true;
    await runAll(socket);
    again.disabled = false;
  });
  await runAll(socket);
  again.disabled = false;
}

main();

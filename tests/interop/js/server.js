'use strict';
// Interop server on the JavaScript RSocket library (rsocket-core / rsocket-tcp-server /
// rsocket-websocket-server 0.0.x).
//
//   node server.js 127.0.0.1:PORT                                  # TCP
//   node server.js --cert s.pem --key s.key tls://127.0.0.1:PORT      # TLS
//   node server.js ws://127.0.0.1:PORT/rsocket         # WebSocket (one frame per message)
//   node server.js --cert s.pem --key s.key wss://127.0.0.1:PORT/rsocket  # WebSocket over TLS
//   node server.js unix:/path/to/socket       # Unix socket; replaces a socket file left there
//
// Addresses and options as Weft's interop_server (common.js). TCP, TLS and Unix sockets are
// RSocketTCPServer (its `serverFactory` makes a net or tls server), WebSocket and WebSocket
// over TLS RSocketWebSocketServer (on `ws`, over an https server for wss://); see
// serverTransport. Serves the interop service table of tests/interop/README.md; prints
// `listening ADDRESS` once bound, and serves until killed. Payload data is raw bytes
// (BufferEncoders).
//
// Library behaviours this server shows on the wire and does NOT hide (the Weft side must cope):
// - stream and channel completion is a separate C-only PAYLOAD (never C on the last item);
// - as a channel responder, the library charges the payload inside REQUEST_CHANNEL to the first
//   request(n) made on the inbound Flowable: request(32) goes out as REQUEST_N(31).

const fs = require('fs');
const https = require('https');
const net = require('net');
const tls = require('tls');
const {RSocketServer, FLAGS, FRAME_TYPES} = require('rsocket-core');
const RSocketTCPServer = require('rsocket-tcp-server').default;
const RSocketWebSocketServer = require('rsocket-websocket-server').default;
const WebSocket = require('ws');
const {Flowable, Single} = require('rsocket-flowable');
const {BufferEncoders, SVC, routeOf, parseArgs, readOption, toBuffer} = require('./common');

const MAX_REQUEST_N = 0x7fffffff;
const STREAM_BATCH = 64; // items per event-loop turn for a stream producer
const CHANNEL_WINDOW = 32; // inbound payloads a channel asks for at a time

const fireCounts = new Map();
let fireTotal = 0;

const unknownRoute = (route, model) =>
  new Error(`unknown route ${JSON.stringify(route)} for ${model}`);

// "0".."n-1" within the subscriber's demand, then complete.
function countingStream(n) {
  return new Flowable(subscriber => {
    let next = 0;
    let demand = 0;
    let cancelled = false;
    let scheduled = false;
    let done = false;
    const produce = () => {
      scheduled = false;
      let sent = 0;
      while (!cancelled && demand > 0 && next < n && sent < STREAM_BATCH) {
        demand--;
        subscriber.onNext({data: Buffer.from(String(next++))});
        sent++;
      }
      if (cancelled || done) {
        return;
      }
      if (next === n) {
        done = true;
        subscriber.onComplete();
      } else if (demand > 0) {
        scheduled = true;
        setImmediate(produce);
      }
    };
    subscriber.onSubscribe({
      cancel: () => {
        cancelled = true;
      },
      request: k => {
        demand = Math.min(demand + k, Number.MAX_SAFE_INTEGER);
        if (!scheduled) {
          scheduled = true;
          setImmediate(produce);
        }
      },
    });
  }, MAX_REQUEST_N);
}

// Echo of every inbound payload (the first, from REQUEST_CHANNEL, included) within the
// outbound demand; asks for inbound payloads CHANNEL_WINDOW at a time and for more only as
// echoes leave, so at most CHANNEL_WINDOW payloads wait here.
function channelEcho(payloads) {
  return new Flowable(subscriber => {
    const queue = [];
    let demand = 0;
    let inbound = null;
    let inboundDone = false;
    let released = 0;
    let finished = false;
    const drain = () => {
      if (finished) {
        return;
      }
      while (demand > 0 && queue.length > 0) {
        demand--;
        released++;
        subscriber.onNext({data: queue.shift()});
      }
      if (inboundDone) {
        if (queue.length === 0) {
          finished = true;
          subscriber.onComplete();
        }
      } else if (inbound && released >= CHANNEL_WINDOW / 2) {
        inbound.request(released);
        released = 0;
      }
    };
    subscriber.onSubscribe({
      // The requester's CANCEL ends the whole channel (Protocol.md: the stream is terminated
      // on the responder); nothing is sent back for the inbound side.
      cancel: () => {
        finished = true;
        queue.length = 0;
      },
      request: n => {
        demand = Math.min(demand + n, Number.MAX_SAFE_INTEGER);
        drain();
      },
    });
    payloads.subscribe({
      onSubscribe: subscription => {
        inbound = subscription;
        subscription.request(CHANNEL_WINDOW);
      },
      onNext: payload => {
        queue.push(toBuffer(payload.data));
        drain();
      },
      onComplete: () => {
        inboundDone = true;
        drain();
      },
      onError: () => {
        inboundDone = true;
        finished = true;
      },
    });
  }, MAX_REQUEST_N);
}

// `echo.Echo/ChannelCount`: N payloads each way, N in the first inbound one (`payloads`
// replays it). Outbound: "0".."n-1" within the requester's demand, whatever the inbound side
// does; the completion (or an error, when the requester sent other than n payloads) only once
// the requester has completed. Inbound: asks for exactly the n-1 further payloads due, in two
// steps (about half, then the rest once those arrived), so the requester's last payload uses
// its last credit and its completion must still come.
function channelCount(n, payloads) {
  return new Flowable(subscriber => {
    let next = 0;
    let demand = 0;
    let received = 0;
    let granted = 0;
    const half = Math.floor((n - 1) / 2);
    const steps = [half, n - 1 - half].filter(step => step > 0);
    let inbound = null;
    let inboundDone = false;
    let finished = false;
    const drain = () => {
      if (finished) {
        return;
      }
      while (demand > 0 && next < n) {
        demand--;
        subscriber.onNext({data: Buffer.from(String(next++))});
      }
      if (next === n && inboundDone) {
        finished = true;
        if (received === n) {
          subscriber.onComplete();
        } else {
          subscriber.onError(new Error(`ChannelCount ${n}: the requester sent ${received} payloads`));
        }
      }
    };
    subscriber.onSubscribe({
      cancel: () => {
        finished = true;
      },
      request: k => {
        demand = Math.min(demand + k, Number.MAX_SAFE_INTEGER);
        drain();
      },
    });
    payloads.subscribe({
      onSubscribe: subscription => {
        inbound = subscription;
        // The replayed payload from REQUEST_CHANNEL: no REQUEST_N goes out for it.
        granted = 1;
        subscription.request(1);
      },
      onNext: () => {
        received++;
        if (received === granted && steps.length > 0) {
          const step = steps.shift();
          granted += step;
          inbound.request(step);
        }
      },
      onComplete: () => {
        inboundDone = true;
        drain();
      },
      onError: () => {
        inboundDone = true;
        finished = true;
      },
    });
  }, MAX_REQUEST_N);
}

function routeChannel(route, first, payloads) {
  if (route === SVC + 'Channel') {
    return channelEcho(payloads);
  }
  if (route === SVC + 'ChannelCount') {
    const text = toBuffer(first.data).toString('latin1');
    if (!/^[0-9]+$/.test(text) || Number(text) < 1 || Number(text) > 1000) {
      return Flowable.error(new Error(`ChannelCount wants an ASCII decimal 1..1000 first, got ${JSON.stringify(text)}`));
    }
    return channelCount(Number(text), payloads);
  }
  return Flowable.error(unknownRoute(route, 'channel'));
}

const handler = {
  requestResponse(payload) {
    const route = routeOf(payload.metadata);
    const data = toBuffer(payload.data);
    switch (route) {
      case SVC + 'Unary':
        return Single.of({data});
      case SVC + 'Error':
        // The library answers ERROR APPLICATION_ERROR (0x201) with error.message.
        return Single.error(new Error(data.toString('utf8')));
      case SVC + 'FireCount': {
        const key = data.toString('latin1');
        const count = data.length === 0 ? fireTotal : fireCounts.get(key) || 0;
        return Single.of({data: Buffer.from(String(count))});
      }
      default:
        return Single.error(unknownRoute(route, 'request/response'));
    }
  },
  requestStream(payload) {
    const route = routeOf(payload.metadata);
    if (route !== SVC + 'ServerStream') {
      return Flowable.error(unknownRoute(route, 'request/stream'));
    }
    const text = toBuffer(payload.data).toString('latin1');
    if (!/^[0-9]+$/.test(text) || Number(text) > 1000000) {
      return Flowable.error(new Error(`ServerStream wants an ASCII decimal 0..1000000, got ${JSON.stringify(text)}`));
    }
    return countingStream(Number(text));
  },
  requestChannel(payloads) {
    // The route is in the first payload's metadata, which the library only hands over once
    // the inbound Flowable is subscribed and requested; peek at it, then route.
    return new Flowable(subscriber => {
      let routed = null;
      let outSubscription = null;
      let pendingDemand = 0;
      let cancelled = false;
      subscriber.onSubscribe({
        cancel: () => {
          cancelled = true;
          outSubscription && outSubscription.cancel();
        },
        request: n => {
          if (outSubscription) {
            outSubscription.request(n);
          } else {
            pendingDemand = Math.min(pendingDemand + n, MAX_REQUEST_N);
          }
        },
      });
      // A Flowable over the inbound payloads that replays the first one to whoever routes it.
      let first = null;
      let inbound = null;
      let inboundSink = null;
      const buffered = [];
      let terminal = null;
      const replay = new Flowable(sink => {
        inboundSink = sink;
        let firstDelivered = false;
        sink.onSubscribe({
          cancel: () => {},
          request: n => {
            if (!firstDelivered) {
              firstDelivered = true;
              sink.onNext(first);
              n--;
            }
            if (n > 0) {
              inbound.request(n);
            }
          },
        });
        buffered.forEach(p => sink.onNext(p));
        if (terminal) {
          terminal();
        }
      }, MAX_REQUEST_N);
      payloads.subscribe({
        onSubscribe: subscription => {
          inbound = subscription;
          // Charged by the library to the payload inside REQUEST_CHANNEL: no REQUEST_N goes out.
          subscription.request(1);
        },
        onNext: payload => {
          if (first === null) {
            first = payload;
            const route = routeOf(payload.metadata);
            routed = routeChannel(route, first, replay);
            if (cancelled) {
              return;
            }
            routed.subscribe({
              onSubscribe: s => {
                outSubscription = s;
                if (pendingDemand > 0) {
                  s.request(pendingDemand);
                }
              },
              onNext: p => subscriber.onNext(p),
              onComplete: () => subscriber.onComplete(),
              // ERROR from the responder terminates both directions; no CANCEL needed.
              onError: e => subscriber.onError(e),
            });
          } else if (inboundSink) {
            inboundSink.onNext(payload);
          } else {
            buffered.push(payload);
          }
        },
        onComplete: () => {
          terminal = () => inboundSink.onComplete();
          inboundSink && terminal();
        },
        onError: error => {
          terminal = () => inboundSink.onError(error);
          inboundSink && terminal();
        },
      });
    }, MAX_REQUEST_N);
  },
  fireAndForget(payload) {
    const route = routeOf(payload.metadata);
    if (route === SVC + 'Fire') {
      const key = toBuffer(payload.data).toString('latin1');
      fireCounts.set(key, (fireCounts.get(key) || 0) + 1);
      fireTotal++;
    }
    // Anything else: fire-and-forget has no stream to answer on; dropped.
  },
};

// rsocket-js 0.0.27 ignores the C flag on an inbound REQUEST_CHANNEL: its responder
// (RSocketMachine._handleRequestChannel) never completes the inbound side, so a requester that
// completes in its first frame (Protocol.md allows C on REQUEST_CHANNEL; rsocket-py does it for
// a one-payload channel) would never see the channel end. This server is meant to be a correct
// responder, so it splits such a frame at the connection layer (the library's DuplexConnection
// interface) into REQUEST_CHANNEL without C followed by a C-only PAYLOAD, which the library
// does handle. Nothing else on the wire changes.
function completeChannelFix(connection) {
  const wrapped = Object.create(connection);
  wrapped.receive = () =>
    connection.receive().lift(actual => ({
      onSubscribe: subscription => actual.onSubscribe(subscription),
      onNext: frame => {
        if (frame.type === FRAME_TYPES.REQUEST_CHANNEL && frame.flags & FLAGS.COMPLETE) {
          actual.onNext({...frame, flags: frame.flags & ~FLAGS.COMPLETE});
          actual.onNext({
            type: FRAME_TYPES.PAYLOAD,
            flags: FLAGS.COMPLETE,
            streamId: frame.streamId,
            data: null,
            metadata: null,
          });
        } else {
          actual.onNext(frame);
        }
      },
      onComplete: () => actual.onComplete(),
      onError: error => actual.onError(error),
    }));
  return wrapped;
}

function listenFailed(error) {
  console.error(`server error: ${error.message}`);
  process.exit(1);
}

// The library's server transport for the address:
// - RSocketTCPServer for TCP, TLS and a Unix socket. Its public `serverFactory` option makes
//   the listener: net.createServer, or tls.createServer with --cert/--key (whose connection
//   callback gets each socket once its handshake is done). The library then calls
//   `listen(port, host)`; for a Unix socket `port` is the socket's path and `host` undefined,
//   which is net's `listen(path)`.
// - RSocketWebSocketServer for ws:// and wss://: a `ws` WebSocket.Server accepting upgrades
//   on PATH only, on its own HTTP listener (ws://) or on an https.Server with --cert/--key
//   (wss://) listening on HOST:PORT.
function serverTransport(address, options) {
  let tlsFiles = null;
  if (address.tls) {
    try {
      tlsFiles = {cert: readOption(options, '--cert'), key: readOption(options, '--key')};
    } catch (error) {
      listenFailed(error);
    }
  }
  const listening = server => {
    server.on('listening', () => console.log(`listening ${address.text}`));
    server.on('error', listenFailed);
    return server;
  };
  if (address.transport === 'tcp' || address.transport === 'tls' || address.transport === 'unix') {
    let where = {host: address.host, port: address.port};
    if (address.transport === 'unix') {
      removeStaleSocket(address.path);
      where = {port: address.path, host: undefined};
    }
    return new RSocketTCPServer(
      {
        ...where,
        serverFactory: onConnect => listening(tlsFiles ? tls.createServer(tlsFiles, onConnect) : net.createServer(onConnect)),
      },
      BufferEncoders,
    );
  }
  const {host, port, path} = address;
  return new RSocketWebSocketServer({host, port, path}, BufferEncoders, wsOptions => {
    if (!tlsFiles) {
      return listening(new WebSocket.Server(wsOptions));
    }
    const server = https.createServer(tlsFiles);
    // `server` takes the place of host and port; ws re-emits its `listening` and `error`.
    const wss = listening(new WebSocket.Server({server, path}));
    server.listen(port, host);
    return wss;
  });
}

// A socket file left by an earlier run would make the bind fail (EADDRINUSE).
function removeStaleSocket(path) {
  try {
    if (fs.statSync(path).isSocket()) {
      fs.unlinkSync(path);
    }
  } catch (error) {
    if (error.code !== 'ENOENT') {
      listenFailed(error);
    }
  }
}

function main() {
  const {address, options} = parseArgs(process.argv.slice(2), ['--cert', '--key']);
  const inner = serverTransport(address, options);
  const transport = {
    start: () => inner.start().map(completeChannelFix),
    stop: () => inner.stop(),
  };
  const server = new RSocketServer({
    getRequestHandler: () => handler,
    transport,
    errorHandler: error => console.error(`connection error: ${error.message}`),
  });
  server.start();
}

main();

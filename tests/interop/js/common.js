'use strict';
// Shared bits of the JavaScript interop peers (rsocket-core 0.0.x): routing metadata and the
// command line (addresses and TLS options as Weft's interop binaries take them).

const fs = require('fs');
const {
  BufferEncoders,
  MESSAGE_RSOCKET_COMPOSITE_METADATA,
  MESSAGE_RSOCKET_ROUTING,
  APPLICATION_OCTET_STREAM,
  encodeCompositeMetadata,
  decodeCompositeMetadata,
  encodeRoute,
  decodeRoutes,
} = require('rsocket-core');

const SVC = 'echo.Echo/';

// Composite metadata holding one routing entry (written under the well-known id 0x7E).
function routeMetadata(route) {
  return encodeCompositeMetadata([[MESSAGE_RSOCKET_ROUTING, encodeRoute(route)]]);
}

// The first routing tag in a composite metadata block, or null. A routing entry may arrive
// under the well-known id or under its MIME type written as a string: both decode to the
// same mimeType here.
function routeOf(metadata) {
  if (!metadata || metadata.length === 0) {
    return null;
  }
  for (const entry of decodeCompositeMetadata(metadata)) {
    if (entry.mimeType === MESSAGE_RSOCKET_ROUTING.string) {
      for (const tag of decodeRoutes(entry.content)) {
        return tag;
      }
    }
  }
  return null;
}

const USAGE =
  '[--cert PEM --key PEM | --ca PEM] 127.0.0.1:PORT | tls://127.0.0.1:PORT | ws[s]://127.0.0.1:PORT/PATH | unix:PATH';

// One address, written as Weft's interop binaries take it (examples/interop/endpoint.rs):
// `HOST:PORT` (TCP), `tls://HOST:PORT` (the same over TLS), `ws://HOST:PORT/PATH` (RSocket over
// WebSocket, one frame per binary message), `wss://HOST:PORT/PATH` (the same over TLS) or
// `unix:PATH` (a Unix domain socket, framed as TCP). `transport` uses run.sh's names. Null on
// anything else.
function parseAddress(arg) {
  let m = /^(tls:\/\/)?([0-9.]+):([0-9]+)$/.exec(arg);
  if (m) {
    return {transport: m[1] ? 'tls' : 'tcp', tls: !!m[1], host: m[2], port: Number(m[3]), text: arg};
  }
  m = /^(wss?):\/\/([0-9.]+):([0-9]+)(\/[^?#]*)?$/.exec(arg);
  if (m) {
    const tls = m[1] === 'wss';
    const transport = tls ? 'websocket-tls' : 'websocket';
    return {transport, tls, host: m[2], port: Number(m[3]), path: m[4] || '/', url: arg, text: arg};
  }
  if (arg.startsWith('unix:') && arg.length > 'unix:'.length) {
    return {transport: 'unix', tls: false, path: arg.slice('unix:'.length), text: arg};
  }
  return null;
}

// The command line: options (`--cert PEM --key PEM` for a server, `--ca PEM` for a client;
// those in `allowed`, anywhere, each taking the next argument) and exactly one address.
// Returns {address, options}; exits with a usage line on anything else. The options matter
// only over tls:// and wss://.
function parseArgs(argv, allowed) {
  const options = {};
  const addresses = [];
  const usage = why => {
    console.error(`${why}\nusage: node ${process.argv[1]} ${USAGE}`);
    process.exit(2);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg.startsWith('--')) {
      if (!allowed.includes(arg)) {
        usage(`unknown option ${arg}`);
      }
      if (i + 1 >= argv.length) {
        usage(`${arg} needs a PATH`);
      }
      options[arg] = argv[++i];
      continue;
    }
    const address = parseAddress(arg);
    if (!address) {
      usage(`not an address: ${arg}`);
    }
    addresses.push(address);
  }
  if (addresses.length !== 1) {
    usage(`want 1 address, got ${addresses.length}`);
  }
  return {address: addresses[0], options};
}

// The contents of the file given as `option` (a PEM); throws `TLS needs OPTION PATH` when the
// option is missing, or the read error.
function readOption(options, option) {
  if (!options[option]) {
    throw new Error(`TLS needs ${option} PATH`);
  }
  return fs.readFileSync(options[option]);
}

const toBuffer = data => (data == null ? Buffer.alloc(0) : Buffer.from(data));

module.exports = {
  BufferEncoders,
  SETUP_METADATA_MIME: MESSAGE_RSOCKET_COMPOSITE_METADATA.string,
  SETUP_DATA_MIME: APPLICATION_OCTET_STREAM.string,
  SVC,
  routeMetadata,
  routeOf,
  parseArgs,
  readOption,
  toBuffer,
};

'use strict';
// Shared bits of the JavaScript interop peers (rsocket-core 0.0.x).

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

// The address argument: `HOST:PORT` (TCP) or `ws://HOST:PORT/PATH` (RSocket over WebSocket,
// one frame per binary message). Exits with a usage line on anything else.
function parseAddress(arg) {
  let m = /^([0-9.]+):([0-9]+)$/.exec(arg || '');
  if (m) {
    return {transport: 'tcp', host: m[1], port: Number(m[2]), text: arg};
  }
  m = /^ws:\/\/([0-9.]+):([0-9]+)(\/[^?#]*)?$/.exec(arg || '');
  if (m) {
    return {transport: 'websocket', host: m[1], port: Number(m[2]), path: m[3] || '/', url: arg, text: arg};
  }
  console.error('usage: node ' + process.argv[1] + ' 127.0.0.1:PORT | ws://127.0.0.1:PORT/PATH');
  process.exit(2);
}

const toBuffer = data => (data == null ? Buffer.alloc(0) : Buffer.from(data));

module.exports = {
  BufferEncoders,
  SETUP_METADATA_MIME: MESSAGE_RSOCKET_COMPOSITE_METADATA.string,
  SETUP_DATA_MIME: APPLICATION_OCTET_STREAM.string,
  SVC,
  routeMetadata,
  routeOf,
  parseAddress,
  toBuffer,
};

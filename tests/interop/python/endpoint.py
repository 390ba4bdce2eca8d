"""The command line of the Python interop peers: options and one address, written as Weft's
interop binaries take them (examples/interop/endpoint.rs), so run.sh calls every peer alike.

    127.0.0.1:PORT                TCP: each frame behind a 24-bit length
    tls://127.0.0.1:PORT          the same over TLS
    ws://127.0.0.1:PORT/PATH      WebSocket: one frame per binary message
    wss://127.0.0.1:PORT/PATH     the same over TLS
    unix:PATH                     a Unix domain socket, framed as TCP

Options (anywhere on the line, each taking the next argument): `--cert PEM --key PEM` for a
server over tls:// or wss:// (the certificate names the host the clients dial), `--ca PEM` for
a client over them (the roots it trusts; nothing else is trusted). Elsewhere they are ignored.
"""

import re
import ssl
import sys
from dataclasses import dataclass

USAGE = ('[--cert PEM --key PEM | --ca PEM] '
         '127.0.0.1:PORT | tls://127.0.0.1:PORT | ws[s]://127.0.0.1:PORT/PATH | unix:PATH')


@dataclass
class Endpoint:
    """One parsed address."""
    transport: str  # tcp, tls, websocket, websocket-tls or unix (run.sh's names)
    text: str  # as written
    host: str = ''
    port: int = 0
    path: str = ''  # the WebSocket endpoint's HTTP path, or the Unix socket's file
    url: str = ''  # ws:// or wss:// URL

    @property
    def tls(self) -> bool:
        return self.transport in ('tls', 'websocket-tls')


def parse_endpoint(text: str):
    """The Endpoint written as `text`, or None."""
    match = re.fullmatch(r'(tls://)?([0-9.]+):([0-9]+)', text)
    if match:
        return Endpoint('tls' if match.group(1) else 'tcp', text, match.group(2), int(match.group(3)))
    match = re.fullmatch(r'(wss?)://([0-9.]+):([0-9]+)(/[^?#]*)?', text)
    if match:
        transport = 'websocket-tls' if match.group(1) == 'wss' else 'websocket'
        return Endpoint(transport, text, match.group(2), int(match.group(3)), match.group(4) or '/', text)
    if text.startswith('unix:') and len(text) > len('unix:'):
        return Endpoint('unix', text, path=text[len('unix:'):])
    return None


def parse_args(program: str, argv: list, allowed: tuple):
    """(Endpoint, {option: path}) from the command line; exits with a usage line on anything
    else. `allowed`: the options this program takes, e.g. ('--ca',)."""
    options = {}
    endpoints = []
    args = iter(argv)
    for arg in args:
        if arg.startswith('--'):
            if arg not in allowed:
                sys.exit('%s: unknown option %s\nusage: %s %s' % (program, arg, program, USAGE))
            value = next(args, None)
            if value is None:
                sys.exit('%s: %s needs a PATH' % (program, arg))
            options[arg] = value
            continue
        endpoint = parse_endpoint(arg)
        if endpoint is None:
            sys.exit('%s: not an address: %s\nusage: %s %s' % (program, arg, program, USAGE))
        endpoints.append(endpoint)
    if len(endpoints) != 1:
        sys.exit('usage: %s %s' % (program, USAGE))
    return endpoints[0], options


class MissingOption(Exception):
    pass


def client_tls(options: dict) -> ssl.SSLContext:
    """A client context trusting only the roots in --ca; it checks the server's certificate
    names the host dialled (an IP address here: matched against the IP SANs)."""
    if '--ca' not in options:
        raise MissingOption('TLS needs --ca PATH')
    return ssl.create_default_context(cafile=options['--ca'])


def server_tls(options: dict) -> ssl.SSLContext:
    """A server context with the --cert chain and its --key."""
    for option in ('--cert', '--key'):
        if option not in options:
            raise MissingOption('TLS needs %s PATH' % option)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(options['--cert'], options['--key'])
    return context

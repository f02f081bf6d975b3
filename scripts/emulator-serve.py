"""moto's server on a free loopback port, for as long as stdin stays open.

Prints `listening on http://127.0.0.1:PORT` once it answers, then waits for
its standard input to close (its parent exited, or `scripts/emulator stop`)
and stops the server. Requests are not authenticated (moto's default).
"""

import logging
import socket
import sys
import urllib.request

from moto.server import ThreadedMotoServer


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    # One log line per request would drown the test output.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=10).read()
    print(f"listening on {endpoint}", flush=True)
    try:
        while sys.stdin.read(65536):
            pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()

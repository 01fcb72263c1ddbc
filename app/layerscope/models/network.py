"""Is the host a download would go to reachable at all? Asked before any download starts.

Without a network a download fails late and noisily: a resolver that never answers, or a
route that drops packets, holds ``urlopen`` for tens of seconds before its error. A resolve
and a TCP connect, each bounded by ``TIMEOUT``, answer in seconds, and the download is not
started at all when they fail. The check goes where ``urllib`` would (through
``https_proxy`` and friends when they are set), so it says no only when the download could
not have worked.
"""

from __future__ import annotations

import socket
import threading
import urllib.request
from urllib.parse import urlparse

TIMEOUT = 3.0  # seconds for the name lookup, then again for the connect
PORTS = {"https": 443, "http": 80}


def check_reachable(url: str, timeout: float = TIMEOUT) -> None:
    """Return when a TCP connection to ``url``'s host (or its proxy) opens within ``timeout``;
    otherwise raise ``ConnectionError`` naming the host and why, in one line."""
    host, port = _first_hop(url)
    try:
        address = _resolve(host, port, timeout)
        socket.create_connection(address, timeout=timeout).close()
    except OSError as exc:
        raise ConnectionError(f"no network: {host}:{port} cannot be reached ({exc})") from exc


def _first_hop(url: str) -> tuple[str, int]:
    """The host and port a download of ``url`` connects to: its proxy's when one is configured."""
    parsed = urlparse(url)
    proxy = urllib.request.getproxies().get(parsed.scheme)
    if proxy and not urllib.request.proxy_bypass(parsed.hostname or ""):
        via = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        return via.hostname or "", via.port or PORTS.get(via.scheme, 80)
    return parsed.hostname or "", parsed.port or PORTS.get(parsed.scheme, 443)


def _resolve(host: str, port: int, timeout: float) -> tuple[str, int]:
    """``host``'s first address; ``getaddrinfo`` has no timeout, so it runs in a thread left behind
    (daemon: it cannot hold the exit) when the resolver does not answer in time."""
    found: list[tuple[str, int]] = []
    failure: list[OSError] = []

    def lookup() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][:2])
        except OSError as exc:
            failure.append(exc)

    worker = threading.Thread(target=lookup, name="resolve", daemon=True)
    worker.start()
    worker.join(timeout)
    if failure:
        raise failure[0]
    if not found:
        raise TimeoutError(f"name lookup took over {timeout:g} s")
    return found[0]

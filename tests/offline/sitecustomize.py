"""Refuse every network connection except loopback, in any Python started with this on its path.

`make test` and `make book` put this folder on PYTHONPATH, so the test process and every
notebook kernel it starts import this file at start-up: a notebook that tries to download
anything fails at once, loudly, instead of passing on a machine that happens to be online.
"""

import ipaddress
import socket


class NetworkBlocked(ConnectionRefusedError):
    """A connection to a non-loopback address was attempted while the book runs offline."""


def _is_loopback(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name: resolving it would already use the network


def _guard(method):
    def guarded(self, address, *args):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
            raise NetworkBlocked(f"network access is disabled while the book runs offline: {address!r}")
        return method(self, address, *args)

    guarded.__name__ = method.__name__
    return guarded


def _guarded_sendto(method):
    def sendto(self, data, *args):
        address = args[-1]
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
            raise NetworkBlocked(f"network access is disabled while the book runs offline: {address!r}")
        return method(self, data, *args)

    return sendto


_getaddrinfo = socket.getaddrinfo


def _local_getaddrinfo(host, *args, **kwargs):
    if host is not None and not _is_loopback((host.decode() if isinstance(host, bytes) else host, 0)):
        raise NetworkBlocked(f"name lookup is disabled while the book runs offline: {host!r}")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guard(socket.socket.connect)
socket.socket.connect_ex = _guard(socket.socket.connect_ex)
socket.socket.sendto = _guarded_sendto(socket.socket.sendto)
socket.getaddrinfo = _local_getaddrinfo
socket.NetworkBlocked = NetworkBlocked  # so tests can name the error

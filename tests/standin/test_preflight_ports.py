"""kubeadm preflight's port check (Port-6443 and friends), as the real one makes it with Go's net.Listen: a socket
listening on the port is "in use"; connections a stopped server left in TIME_WAIT are not (kubeadm init right after
a reset must not fail on them)."""

from __future__ import annotations

import socket

from conftest import free_port
from kubeboot_standin.kubeadm.preflight import port_in_use


def test_a_listening_socket_is_in_use_and_time_wait_is_not() -> None:
    port = free_port()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("", port))
    listener.listen()
    assert port_in_use(port)
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    served.close()  # the server closes first: its side of the connection (local port `port`) enters TIME_WAIT
    client.recv(1)
    client.close()
    listener.close()
    assert not port_in_use(port)

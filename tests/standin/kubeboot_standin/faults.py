"""Fault injection markers (tests only).

A file /etc/kubeboot-standin/faults/<command> containing a phase name makes the next
`kubeadm <command>` (init, join, reset) fail at that phase; the marker is consumed.
A file apiserver-down containing a number of seconds makes the API server close its
listening socket (connection refused) for that long. A file certs-renew containing a certificate
name (apiserver, admin.conf...) makes `kubeadm certs renew` fail at that certificate.
"""

from __future__ import annotations

from . import paths


def take(command: str) -> str | None:
    f = paths.fault_dir() / command
    try:
        phase = f.read_text().strip()
    except OSError:
        return None
    f.unlink(missing_ok=True)
    return phase or None


def take_apiserver_outage() -> float | None:
    value = take("apiserver-down")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return 10.0


def take_if(command: str, value: str) -> bool:
    """Consume the marker when its content is `value` (certs-renew: a certificate name)."""
    f = paths.fault_dir() / command
    try:
        if f.read_text().strip() != value:
            return False
    except OSError:
        return False
    f.unlink(missing_ok=True)
    return True


class InjectedFault(Exception):
    pass


def check(pending: str | None, phase: str) -> None:
    """Raise at the named phase (matching a prefix such as 'preflight' or 'control-plane/apiserver')."""
    if pending and (phase == pending or phase.startswith(pending + "/")):
        raise InjectedFault(f"fault injected by marker: phase {phase} failed")

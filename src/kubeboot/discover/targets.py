"""Host arguments: ``[name=][user@]host[:port]``, with IPv6 addresses in brackets (``[2001:db8::1]:2222``)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from kubeboot.errors import UsageError

# An Ansible inventory hostname as discover writes it to host_vars/<name>.yml.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")


@dataclass(frozen=True)
class Target:
    """One host to connect to, as the operator wrote it."""

    spec: str  # the argument as given, for messages
    host: str
    port: int | None = None  # None: the --port default
    user: str | None = None  # None: the --user default
    name: str | None = None  # inventory name; None: the discovered hostname

    @property
    def is_address(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    @property
    def label(self) -> str:
        """How messages name the target before its hostname is known."""
        return self.name or self.host


def parse_target(spec: str) -> Target:
    """``Target`` from ``[name=][user@]host[:port]``; raises ``UsageError`` naming the bad part."""
    name: str | None = None
    rest = spec.strip()
    if "=" in rest:
        name, _, rest = rest.partition("=")
        if not NAME_RE.match(name):
            raise UsageError(f"host {spec!r}: inventory name {name!r} must be letters, digits, '.', '_' or '-'")
    user: str | None = None
    if "@" in rest:
        user, _, rest = rest.rpartition("@")
        if not user:
            raise UsageError(f"host {spec!r}: empty user before '@'")
    port: int | None = None
    if rest.startswith("["):
        host, sep, tail = rest[1:].partition("]")
        if not sep:
            raise UsageError(f"host {spec!r}: missing ']' after the IPv6 address")
        if tail:
            if not tail.startswith(":"):
                raise UsageError(f"host {spec!r}: expected ':PORT' after ']'")
            port = _port(spec, tail[1:])
    elif rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
        port = _port(spec, port_text)
    else:
        host = rest  # a hostname, an IPv4 address or a bare IPv6 address
    if not host:
        raise UsageError(f"host {spec!r}: no host name or address")
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        if not HOST_RE.match(host):
            raise UsageError(f"host {spec!r}: {host!r} is neither an address nor a host name") from None
    return Target(spec=spec, host=host, port=port, user=user, name=name)


def _port(spec: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UsageError(f"host {spec!r}: port {text!r} must be a number from 1 to 65535")
    return int(text)


def parse_targets(specs: list[str]) -> list[Target]:
    """All targets; the same host and port twice, or the same inventory name twice, is a usage error."""
    targets = [parse_target(spec) for spec in specs]
    seen: dict[tuple[str, int | None], str] = {}
    names: dict[str, str] = {}
    for target in targets:
        key = (target.host, target.port)
        if key in seen:
            raise UsageError(f"host {target.spec!r} is given twice (also as {seen[key]!r})")
        seen[key] = target.spec
        if target.name is not None:
            if target.name in names:
                raise UsageError(f"inventory name {target.name!r} is given to {names[target.name]!r} "
                                 f"and {target.spec!r}")
            names[target.name] = target.spec
    return targets

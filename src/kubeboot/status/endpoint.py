"""The API endpoint for `kubeboot status` with kube_control_plane_lb keepalived: the shell that reads it on each
control plane (one part of each node's one script), what it printed parsed, and what differs from the inventory.
Pure functions; the SSH is in ``remote``.

On each control plane: whether the VIP is on one of its NICs (`ip -o -4 addr show to VIP/32`), keepalived's and
haproxy's systemd state (`systemctl is-active`), and haproxy's servers from its stats socket (`show stat`, CSV),
read with socat if the node has it, else with python3. Nothing is changed: `show stat` only reads.
"""

from __future__ import annotations

import csv
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubeboot.derived import LB_KEEPALIVED, setting
from kubeboot.discover.gather import split_sections
from kubeboot.status.compare import Drift

STATS_SOCKET = "/run/haproxy/admin.sock"  # roles/haproxy/templates/haproxy.cfg.j2
PROXY = "kube_apiserver"  # its frontend and backend
SERVICES = ("keepalived", "haproxy")
API_ENDPOINT_PLAYBOOK = "playbooks/api_endpoint.yml"

# python3 reading the stats socket when socat is missing: "show stat", then all it answers until it closes.
_PY_READER = ("import socket, sys\n"
              "c = socket.socket(socket.AF_UNIX)\n"
              "c.settimeout(5)\n"
              "c.connect(sys.argv[1])\n"
              "c.sendall(b\"show stat\\n\")\n"
              "while True:\n"
              "    d = c.recv(65536)\n"
              "    if not d:\n"
              "        break\n"
              "    sys.stdout.write(d.decode(\"utf-8\", \"replace\"))\n")


def wanted(settings: Mapping[str, Any]) -> bool:
    """Whether status reads the API endpoint: kube_control_plane_lb keepalived with a VIP."""
    return setting(settings, "kube_control_plane_lb") == LB_KEEPALIVED and bool(
        setting(settings, "kube_control_plane_vip"))


def script_part(vip: str) -> str:
    """The shell that prints a control plane's endpoint sections; it runs after the script's preflight (which sets
    ``SUDO``), with ``s`` printing section markers and ``$err`` a scratch file. Reads only."""
    return "\n".join([
        "s endpoint-vip",
        ': >"$err"',
        f"if command -v ip >/dev/null 2>&1; then ip -o -4 addr show to {shlex.quote(vip + '/32')} 2>\"$err\"; "
        "r=$?; else r=no-ip; fi",
        's endpoint-vip.rc; echo "$r"; s endpoint-vip.err; tail -n 3 "$err"',
        *[f"s endpoint-{unit}; if command -v systemctl >/dev/null 2>&1; then systemctl is-active {unit}; "
          "else echo no-systemctl; fi" for unit in SERVICES],
        "s endpoint-stat",
        ': >"$err"; via=',
        f"if ! $SUDO test -S {STATS_SOCKET}; then r=no-socket",
        f"elif command -v socat >/dev/null 2>&1; then via=socat; echo 'show stat' | $SUDO socat -T 5 - "
        f"UNIX-CONNECT:{STATS_SOCKET} 2>\"$err\"; r=$?",
        f"elif command -v python3 >/dev/null 2>&1; then via=python3; $SUDO python3 -c {shlex.quote(_PY_READER)} "
        f"{STATS_SOCKET} 2>\"$err\"; r=$?",
        "else r=no-reader; fi",
        's endpoint-stat.rc; echo "$r"; s endpoint-stat.via; echo "$via"; s endpoint-stat.err; tail -n 3 "$err"',
    ]) + "\n"


@dataclass(frozen=True)
class Server:
    """One server of haproxy's kube_apiserver backend (an API server), as `show stat` gives it."""

    name: str  # svname: the control plane's inventory name
    status: str  # UP, DOWN, MAINT, NOLB, DRAIN, "UP 1/2" (going down), "DOWN 1/2" (coming up), no check, ...
    check: str  # check_status, e.g. L7OK, L4CON, L7STS, "* L4CON" (a check in progress)
    lastchg: int | None  # seconds since its last UP/DOWN change

    @property
    def up(self) -> bool:
        return self.status.split(" ")[0] == "UP"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "up": self.up, "check_status": self.check,
                "last_change_seconds": self.lastchg}


def parse_stat(csv_text: str, proxy: str = PROXY) -> list[Server]:
    """The servers of ``proxy`` from `show stat` CSV (a "# pxname,svname,..." header line, then a line per
    frontend, server and backend); fields are found by the header's names. ValueError when it is not that CSV."""
    lines = [line for line in csv_text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# "):
        raise ValueError("no `show stat` header (# pxname,svname,...)")
    header = next(csv.reader([lines[0][2:]]))
    missing = [name for name in ("pxname", "svname", "status") if name not in header]
    if missing:
        raise ValueError(f"`show stat` without the {', '.join(missing)} field")
    servers = []
    for row in csv.reader(lines[1:]):
        values = dict(zip(header, row, strict=False))
        if values.get("pxname") != proxy or values.get("svname") in ("FRONTEND", "BACKEND", None):
            continue
        lastchg = values.get("lastchg", "")
        servers.append(Server(name=values["svname"], status=values.get("status", ""),
                              check=values.get("check_status", ""),
                              lastchg=int(lastchg) if lastchg.isdigit() else None))
    return servers


@dataclass
class NodeEndpoint:
    """What a control plane shows of the API endpoint, or why it could not be read (one line each)."""

    name: str
    where: str  # name (user@host:port)
    holds_vip: bool | None = None  # None: not read
    services: dict[str, str] = field(default_factory=dict)  # keepalived/haproxy -> systemctl is-active
    servers: list[Server] | None = None  # None: not read (see errors, or haproxy is not running)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "where": self.where, "holds_vip": self.holds_vip,
                "keepalived": self.services.get("keepalived"), "haproxy": self.services.get("haproxy"),
                "backends": None if self.servers is None else [s.as_dict() for s in self.servers],
                "read": not self.errors, "errors": self.errors}


def parse(name: str, where: str, vip: str, output: str) -> NodeEndpoint:
    """A control plane's endpoint from its script's output (its endpoint sections; others are ignored)."""
    sections = split_sections(output)
    found = NodeEndpoint(name=name, where=where)
    if "endpoint-vip" not in sections:
        found.errors.append("the API endpoint was not read (the script was cut short)")
        return found
    rc = sections.get("endpoint-vip.rc", "").strip()
    if rc == "0":
        found.holds_vip = any(f" inet {vip}/" in f" {line} " for line in sections["endpoint-vip"].splitlines())
    elif rc == "no-ip":
        found.errors.append("`ip` is not installed there, so whether it holds the VIP is not known")
    else:
        error = (sections.get("endpoint-vip.err", "").strip().splitlines() or [f"exit {rc}"])[-1]
        found.errors.append(f"`ip -o -4 addr show to {vip}/32` failed: {error}")
    for unit in SERVICES:
        state = sections.get(f"endpoint-{unit}", "").strip().splitlines()
        found.services[unit] = state[-1] if state else ""
    if "no-systemctl" in found.services.values():
        found.errors.append("systemctl is not there, so the state of keepalived and haproxy is not known")
    rc = sections.get("endpoint-stat.rc", "").strip()
    via = sections.get("endpoint-stat.via", "").strip()
    error = (sections.get("endpoint-stat.err", "").strip().splitlines() or [f"exit {rc}"])[-1]
    if rc == "0":
        try:
            found.servers = parse_stat(sections.get("endpoint-stat", ""))
        except ValueError as exc:
            found.errors.append(f"haproxy's stats socket {STATS_SOCKET} (read with {via}): {exc}")
    elif rc == "no-socket":
        if found.services.get("haproxy") == "active":
            found.errors.append(f"haproxy runs but its stats socket {STATS_SOCKET} is missing, so its backends "
                                "cannot be read")
        # else: haproxy does not run, which is the problem shown
    elif rc == "no-reader":
        found.errors.append(f"neither socat nor python3 is there, so haproxy's stats socket {STATS_SOCKET} cannot "
                            "be read; install socat to see the backends")
    elif rc:
        found.errors.append(f"haproxy's stats socket {STATS_SOCKET} could not be read with {via or 'socat'}: "
                            f"{error}")
    else:
        found.errors.append("haproxy's backends were not read (the script was cut short)")
    return found


@dataclass
class Endpoint:
    """The API endpoint as every control plane read sees it."""

    endpoint: str  # VIP:kube_control_plane_lb_port
    vip: str
    control_planes: list[str]  # the inventory's, in order: haproxy's expected backends
    nodes: list[NodeEndpoint] = field(default_factory=list)

    @property
    def holders(self) -> list[str]:
        return [n.name for n in self.nodes if n.holds_vip]

    @property
    def errors(self) -> list[str]:
        """One line per control plane and thing that could not be read."""
        return [f"{n.where}: {error}" for n in self.nodes for error in n.errors]

    def problems(self) -> list[Drift]:
        """No holder or two (split brain), a service not active, a backend not UP, missing or not declared."""
        found: list[Drift] = []
        holders = self.holders
        if not holders:
            unknown = [n.name for n in self.nodes if n.holds_vip is None]
            found.append(Drift("cluster", "vip", self.vip, "missing", "held by one control plane",
                                 None if not unknown else f"not held by those read ({', '.join(unknown)} not)"))
        elif len(holders) > 1:
            found.append(Drift("cluster", "vip", self.vip, "different", "held by one control plane",
                                 f"held by {', '.join(holders)} (split brain)"))
        for node in self.nodes:
            for unit in SERVICES:
                state = node.services.get(unit, "")
                if state and state not in ("active", "no-systemctl"):
                    found.append(Drift(node.name, "service", unit, "different", "active", state))
            if node.servers is None:
                continue
            names = [s.name for s in node.servers]
            for server in node.servers:
                if server.name not in self.control_planes:
                    found.append(Drift(node.name, "backend", server.name, "extra", None, _state(server)))
                elif not server.up:
                    found.append(Drift(node.name, "backend", server.name, "different", "UP", _state(server)))
            found += [Drift(node.name, "backend", name, "missing", "UP", None)
                      for name in self.control_planes if name not in names]
        return found

    def as_dict(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "vip": self.vip, "holders": self.holders,
                "control_planes": [n.as_dict() for n in self.nodes], "errors": self.errors}


def _state(server: Server) -> str:
    return f"{server.status} ({server.check})" if server.check else server.status


def endpoint_of(settings: Mapping[str, Any], control_planes: Sequence[str]) -> Endpoint:
    """An Endpoint with no node read yet, from the inventory's cluster settings."""
    vip = str(setting(settings, "kube_control_plane_vip"))
    return Endpoint(endpoint=f"{vip}:{setting(settings, 'kube_control_plane_lb_port')}", vip=vip,
                    control_planes=list(control_planes))


def fix(problem: Drift) -> str:
    """What to do about a problem, in a few words."""
    if problem.kind == "vip":
        if problem.state == "missing":
            return ("no control plane holds the VIP: check keepalived there (`systemctl status keepalived`, "
                    "`journalctl -u keepalived`); its check gives the VIP up while haproxy or the local API server "
                    "fails")
        return ("split brain: the control planes do not hear each other's VRRP adverts; check the network between "
                "them for multicast (or set kube_control_plane_vip_unicast) and that the router id is unique")
    if problem.kind == "service":
        return (f"start {problem.key} on {problem.node} (`systemctl status {problem.key}`), or run "
                f"{API_ENDPOINT_PLAYBOOK}")
    if problem.state == "different" and (problem.actual or "").startswith(("MAINT", "DRAIN")):
        return (f"put in maintenance through {problem.node}'s haproxy stats socket: `enable server "
                f"{PROXY}/{problem.key}` there when it should serve again")
    if problem.state == "different":
        return (f"{problem.key}'s API server does not answer {problem.node}'s haproxy (GET /readyz): check it there "
                "(`crictl ps`, `journalctl -u kubelet`)")
    return f"haproxy's backends differ from the inventory's control planes: run {API_ENDPOINT_PLAYBOOK}"

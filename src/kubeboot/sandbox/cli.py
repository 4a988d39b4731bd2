"""`kubeboot sandbox up|status|ssh|down`: local cluster nodes as systemd-nspawn machines."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kubeboot.sandbox import manager, node


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sandbox", help="local cluster nodes (systemd-nspawn) for trying and testing the playbooks",
        description="Bring up, inspect and remove a sandbox of local nodes reached over real SSH.",
    )
    sub = parser.add_subparsers(dest="sandbox_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--name", default="default", help="sandbox name (default: %(default)s)")

    up = sub.add_parser("up", help="bring up nodes (adds missing ones to a running sandbox)")
    common(up)
    count = up.add_mutually_exclusive_group(required=True)
    count.add_argument("--layout", help="control planes and workers, e.g. 1cp2w or 3cp3w (nodes get groups)")
    count.add_argument("--nodes", type=int, help="number of ungrouped nodes")
    up.add_argument("--extra-nics", type=int, default=0, metavar="K", help="K more NICs per node (enp0s8, ...)")
    up.add_argument("--primary-nic", default=manager.DEFAULT_PRIMARY_NIC, help="name of each node's first NIC")
    up.add_argument("--subnet", help=f"private IPv4 subnet for the bridge (default {manager.DEFAULT_SUBNET})")
    up.add_argument("--inventory", type=Path, help="where to write the Ansible inventory")
    up.add_argument("--serve", type=Path, metavar="DIR", help="serve DIR over HTTP on the bridge address")
    up.add_argument(
        "--standin", action="store_true",
        help="build and serve the test stand-in Kubernetes packages (tests/standin); point the inventory at them",
    )
    up.add_argument("--standin-minor", metavar="MINOR",
                    help="with --standin: the Kubernetes minor the inventory gets (1.32; default: the newest served)")
    up.add_argument("--json", action="store_true", help="print the result as JSON")
    up.set_defaults(func=_up)

    status = sub.add_parser("status", help="list the nodes and whether they answer")
    common(status)
    status.add_argument("--json", action="store_true", help="print the result as JSON")
    status.set_defaults(func=_status)

    ssh = sub.add_parser("ssh", help="open a shell (or run a command) on a node")
    common(ssh)
    ssh.add_argument("node")
    ssh.add_argument("command", nargs=argparse.REMAINDER, help="command to run instead of a shell")
    ssh.set_defaults(func=_ssh)

    down = sub.add_parser("down", help="remove every node, mount, link, rule and process the sandbox made")
    common(down)
    down.set_defaults(func=_down)


def _up(args: argparse.Namespace) -> int:
    result = manager.up(manager.UpOptions(
        name=args.name, layout=args.layout, nodes=args.nodes, subnet=args.subnet, extra_nics=args.extra_nics,
        primary_nic=args.primary_nic, inventory=args.inventory, serve=args.serve,
        standin=args.standin, standin_minor=args.standin_minor,
    ))
    if args.json:
        print(json.dumps({
            "name": result.state.name, "inventory": result.state.inventory, "started": result.started,
            "rootfs_build_seconds": round(result.rootfs_build_seconds, 1), "seconds": round(result.seconds, 1),
            "nodes": {n.name: asdict(n) for n in result.state.nodes.values()},
            "standin_releases": result.state.standin_releases,
        }, indent=2))
        return 0
    if result.rootfs_build_seconds:
        print(f"built the node root filesystem in {result.rootfs_build_seconds:.0f}s")
    print(f"sandbox {result.state.name}: {len(result.state.nodes)} nodes up "
          f"({len(result.started)} started) in {result.seconds:.1f}s")
    _print_table(result.state.name)
    print(f"\ninventory: {result.state.inventory}")
    print(f"try:       ansible all -i {result.state.inventory} -m ansible.builtin.ping")
    return 0


def _print_table(name: str) -> int:
    state, nodes = manager.status(name)
    if state is None:
        print(f"sandbox {name}: not up")
        return 1
    rows = [("NODE", "ADDRESS", "GROUPS", "NICS (MAC)", "STATE")]
    for item in nodes:
        nics = " ".join(f"{nic}({mac})" for nic, mac in zip(item.nics, item.macs, strict=True))
        state_text = "ssh ok" if item.ssh else ("running" if item.running else "stopped")
        rows.append((item.name, item.address, ",".join(item.groups) or "-", nics, state_text))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0 if all(item.ssh for item in nodes) else 1


def _status(args: argparse.Namespace) -> int:
    if not args.json:
        return _print_table(args.name)
    state, nodes = manager.status(args.name)
    print(json.dumps({
        "name": args.name, "up": state is not None,
        "subnet": state.subnet if state else None, "inventory": state.inventory if state else None,
        "nodes": [asdict(item) for item in nodes],
    }, indent=2))
    return 0 if state is not None and all(item.ssh for item in nodes) else 1


def _ssh(args: argparse.Namespace) -> int:
    state, _ = manager.status(args.name)
    if state is None or args.node not in state.nodes:
        known = ", ".join(sorted(state.nodes)) if state else "none (sandbox not up)"
        print(f"kubeboot: error: no node {args.node!r} in sandbox {args.name!r}; nodes: {known}")
        return 2
    argv = node.ssh_args(state, state.nodes[args.node], batch=bool(args.command))
    command = [c for c in args.command if c != "--"]
    os.execvp("ssh", [*argv, *command])  # noqa: S606 - hands the terminal over to ssh
    return 0  # pragma: no cover


def _down(args: argparse.Namespace) -> int:
    removed = manager.down(args.name)
    print(f"sandbox {args.name}: removed {len(removed)} items" + (f" ({', '.join(removed)})" if removed else ""))
    return 0

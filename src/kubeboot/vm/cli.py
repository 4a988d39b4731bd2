"""`kubeboot vm box` and `kubeboot vm host up|status|down`: the Vagrant tier's offline box and host services."""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kubeboot.vm import box, host


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "vm", help="the Vagrant tier: an offline Debian box and libvirt host services for Vagrant VMs",
        description="Build the offline Vagrant box and run the host services (libvirtd, an isolated network, "
                    "an apt proxy) that the Vagrant (libvirt) tests and Molecule scenario use.",
    )
    sub = parser.add_subparsers(dest="vm_command", metavar="ACTION", required=True)

    build = sub.add_parser("box", help=f"build (or reuse) the Debian 12 libvirt box and add it as {box.BOX_NAME}")
    build.add_argument("--name", default=box.BOX_NAME, help="box name for Vagrant (default: %(default)s)")
    build.add_argument("--force", action="store_true", help="rebuild and re-add even when cached")
    build.add_argument("--log", type=Path, help="write debootstrap's output here")
    build.add_argument("--json", action="store_true", help="print the result as JSON")
    build.set_defaults(func=_box)

    hostp = sub.add_parser("host", help="libvirtd, the isolated network and the apt proxy for the VMs")
    hsub = hostp.add_subparsers(dest="vm_host_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--name", default="default", help="name of this set of host services (default: %(default)s)")
        p.add_argument("--json", action="store_true", help="print the result as JSON")

    up = hsub.add_parser("up", help="start what is missing and print the settings Vagrantfiles read")
    common(up)
    up.add_argument("--subnet", help=f"private IPv4 subnet of the VMs' network (default {host.DEFAULT_SUBNET})")
    up.add_argument("--env", action="store_true", help="print shell `export` lines instead of a summary")
    up.add_argument(
        "--standin", action="store_true",
        help="also build and serve the test stand-in Kubernetes packages (tests/standin) on the VMs' network and "
             "write the inventory variables that use them (KUBEBOOT_VM_VARS)",
    )
    up.set_defaults(func=_up)
    status = hsub.add_parser("status", help="show the settings, or say that nothing is up")
    common(status)
    status.add_argument("--env", action="store_true", help="print shell `export` lines")
    status.set_defaults(func=_status)
    down = hsub.add_parser("down", help="remove exactly what `up` made (and any VM left on its network)")
    common(down)
    down.set_defaults(func=_down)


def _box(args: argparse.Namespace) -> int:
    result = box.ensure_box(name=args.name, force=args.force, log=args.log)
    if args.json:
        print(json.dumps({"box": args.name, "path": str(result.path), "key": result.key,
                          "build_seconds": round(result.build_seconds, 1), "added": result.added}, indent=2))
        return 0
    if result.build_seconds:
        print(f"built {result.path} in {result.build_seconds:.0f}s")
    else:
        print(f"using the cached box {result.path}")
    print(f"vagrant box {args.name}: {'added' if result.added else 'already this build'}")
    return 0


def _print(info: host.HostInfo, args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps({**asdict(info), "env": info.env()}, indent=2))
    elif args.env:
        for key, value in info.env().items():
            print(f"export {key}={shlex.quote(value)}")
    else:
        print(f"vm host {info.name}: network {info.network} ({info.subnet}, host {info.address}), "
              f"pool {info.pool}, apt proxy {info.apt_proxy}"
              + (f", stand-in variables {info.vars_file}" if info.vars_file else "")
              + (f"; started {', '.join(info.started)}" if info.started else ""))


def _up(args: argparse.Namespace) -> int:
    _print(host.up(args.name, args.subnet, standin=args.standin), args)
    return 0


def _status(args: argparse.Namespace) -> int:
    info = host.info(args.name)
    if info is None:
        print(json.dumps({"name": args.name, "up": False}) if args.json else f"vm host {args.name}: not up")
        return 1
    _print(info, args)
    return 0


def _down(args: argparse.Namespace) -> int:
    removed = host.down(args.name)
    if args.json:
        print(json.dumps({"name": args.name, "removed": removed}, indent=2))
    else:
        print(f"vm host {args.name}: removed {len(removed)} items" + (f" ({', '.join(removed)})" if removed else ""))
    return 0

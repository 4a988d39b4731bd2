"""`kubeboot discover HOST...`: gather inventory facts from hosts over SSH; optionally write host_vars."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from kubeboot.discover import report as render
from kubeboot.discover.facts import HostFacts
from kubeboot.discover.run import DiscoverOptions, HostReport, discover
from kubeboot.discover.ssh import DEFAULT_KNOWN_HOSTS, HostOutcome, SshOptions
from kubeboot.discover.targets import parse_target, parse_targets
from kubeboot.errors import UsageError

EPILOG = """\
HOST is [NAME=][USER@]ADDRESS[:PORT] ([2001:db8::1]:2222 for IPv6); NAME is the inventory name, by default the
host's own hostname. Exit codes: 0 every host done, 3 some hosts failed or were skipped, 1 none done, 2 bad arguments.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "discover", help="gather inventory facts (NICs, MACs, addresses, OS) from hosts over SSH",
        description="Connect to hosts over SSH in parallel, gather the facts an inventory needs and print them; "
                    "with --inventory, write public_nic_mac, node_ip and ansible_host to host_vars/<name>.yml "
                    "without overwriting hand-written values unless confirmed.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("hosts", nargs="+", metavar="HOST", help="[NAME=][USER@]HOST[:PORT]")
    parser.add_argument("--user", "-u", help="SSH user (default: your user name; USER@HOST overrides)")
    parser.add_argument("--port", "-p", type=int, default=22, help="SSH port (default: %(default)s)")
    parser.add_argument("--key", "-k", type=Path, help="private key file (default: ssh-agent and ~/.ssh keys)")
    parser.add_argument("--jump", "-J", metavar="[USER@]HOST[:PORT]", help="reach the hosts through this bastion")
    parser.add_argument("--password-prompt", action="store_true", help="ask once for an SSH password")
    parser.add_argument("--known-hosts", type=Path, default=DEFAULT_KNOWN_HOSTS, metavar="FILE",
                        help="known_hosts file (default: %(default)s)")
    parser.add_argument("--accept-new", action="store_true",
                        help="accept and record unknown host keys (changed keys are always refused)")
    parser.add_argument("--parallel", type=int, default=16, metavar="N", help="hosts at once (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="per-host connect and command timeout (default: %(default)s)")
    parser.add_argument("--inventory", "-i", type=Path, metavar="DIR",
                        help="inventory directory (or its hosts file) whose host_vars/ to write; "
                             "without it discover only prints")
    parser.add_argument("--yes", "-y", action="store_true", help="replace hand-written values without asking")
    parser.add_argument("--json", action="store_true", help="print a JSON document instead of tables")
    parser.add_argument("--progress", action="store_true", help="show progress on stderr even when not a terminal")
    parser.set_defaults(func=_discover)


def _options(args: argparse.Namespace) -> DiscoverOptions:
    if args.parallel < 1:
        raise UsageError("--parallel must be at least 1")
    if args.timeout <= 0:
        raise UsageError("--timeout must be more than 0 seconds")
    if not 0 < args.port < 65536:
        raise UsageError("--port must be from 1 to 65535")
    if args.inventory is not None and args.inventory.exists() and not (
            args.inventory.is_dir() or args.inventory.suffix in (".yml", ".yaml")):
        raise UsageError(f"--inventory {args.inventory}: give the inventory directory or its hosts .yml file")
    targets = parse_targets(args.hosts)
    jump = parse_target(args.jump) if args.jump else None
    password = getpass.getpass("SSH password: ") if args.password_prompt else None
    return DiscoverOptions(
        targets=targets,
        ssh=SshOptions(user=args.user, port=args.port, key_file=args.key, password=password,
                       known_hosts=args.known_hosts, accept_new=args.accept_new, jump=jump, timeout=args.timeout),
        parallel=args.parallel, inventory=args.inventory,
    )


def _confirm(args: argparse.Namespace) -> Any:
    def confirm(report: HostReport) -> bool:
        if args.yes:
            return True
        if not (sys.stdin.isatty() and sys.stderr.isatty()) or report.plan is None:
            return False
        print(report.plan.diff(), file=sys.stderr, end="")
        answer = input(f"{report.label}: replace hand-written {', '.join(report.plan.conflicts)} "
                       f"in {report.plan.path}? [y/N] ")
        return answer.strip().lower() in ("y", "yes")

    return confirm


def _progress(enabled: bool) -> Any:
    def on_done(done: int, total: int, outcome: HostOutcome[HostFacts]) -> None:
        label = outcome.value.hostname if outcome.value else outcome.target.label
        status = "ok" if outcome.ok else f"error ({outcome.kind})"
        print(f"[{done}/{total}] {label} {status} {outcome.seconds:.1f}s", file=sys.stderr, flush=True)

    return on_done if enabled else None


def _discover(args: argparse.Namespace) -> int:
    options = _options(args)
    result = discover(options, confirm=_confirm(args), on_done=_progress(args.progress or sys.stderr.isatty()))
    for line in render.error_lines(result):
        print(f"kubeboot: discover: {line}", file=sys.stderr)
    if args.json:
        print(json.dumps(render.to_json(result), indent=2))
        return result.exit_code
    print(render.table(result, writing=options.inventory is not None))
    if options.inventory is None:
        print("\n(print only: give --inventory DIR to write host_vars)")
    else:
        for item in result.hosts:
            if item.plan is not None and item.host_vars:
                changed = ", ".join(c.key for c in item.plan.changes)
                detail = f" ({changed})" if changed and item.host_vars != "unchanged" else ""
                print(f"{item.label}: {item.plan.path} {item.host_vars}{detail}")
    done = sum(1 for h in result.hosts if h.ok)
    print(f"\n{done} of {len(result.hosts)} hosts done")
    return result.exit_code

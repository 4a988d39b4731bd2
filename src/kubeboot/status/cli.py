"""`kubeboot status -i INVENTORY`: the cluster compared with the inventory, read through the first control plane."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from kubeboot.contract import CONTROL_PLANE
from kubeboot.errors import UsageError
from kubeboot.inventory.validate import has_errors, validate_sources
from kubeboot.status import remote, report
from kubeboot.status.compare import compare

EPILOG = f"""\
Exit codes: {report.EXIT_OK} the cluster is as the inventory declares; {report.EXIT_DRIFT} drift (a label, taint,
annotation, role, version, node, CNI or pod range differs); {remote.EXIT_UNREACHABLE} the cluster cannot be reached
or read through the first control plane; 2 bad arguments or an inventory with errors.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status", help="compare the running cluster with the inventory (read-only)",
        description="Connect over SSH to the first control plane as the inventory says (ansible_host, ansible_port, "
                    "ansible_user, ansible_ssh_private_key_file), read the cluster with kubectl and the admin "
                    "kubeconfig there, and show nodes, labels, taints, the pod network and NFS exports against "
                    "the inventory. Changes nothing.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-i", "--inventory", action="append", required=True, metavar="INVENTORY",
                        help="inventory file or directory, as for ansible-playbook (repeatable)")
    parser.add_argument("--json", action="store_true", help="print a JSON document instead of tables")
    parser.add_argument("--known-hosts", type=Path, metavar="FILE",
                        help="known_hosts file (default: UserKnownHostsFile from ansible_ssh_common_args, "
                             "else ~/.ssh/known_hosts)")
    parser.add_argument("--accept-new", action="store_true",
                        help="accept and record an unknown host key (a changed key is always refused)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="SSH connect timeout (default: %(default)s)")
    parser.set_defaults(func=_status)


def _status(args: argparse.Namespace) -> int:
    if args.timeout <= 0:
        raise UsageError("--timeout must be more than 0 seconds")
    inventory, findings = validate_sources(args.inventory)
    if has_errors(findings):
        for finding in findings:
            if finding.level == "error":
                print(finding.line(), file=sys.stderr)
        raise UsageError(f"{', '.join(args.inventory)} has errors (above): fix them, then run status again")
    control_planes = [n for n in inventory.members(CONTROL_PLANE) if n in inventory.hosts]
    if not control_planes:
        raise UsageError(f"{', '.join(args.inventory)}: no host in {CONTROL_PLANE}; status reads the cluster "
                         "through the first control plane")
    first = control_planes[0]
    variables = remote.connection_variables(args.inventory, first)
    conn = remote.connection(first, variables, known_hosts=args.known_hosts, accept_new=args.accept_new,
                             timeout=args.timeout)
    objects = remote.read_cluster(conn)
    status = compare(inventory, objects, conn.where)
    if args.json:
        print(json.dumps(report.to_json(status), indent=2))
    else:
        print(report.table(status))
    return report.exit_code(status)

"""`kubeboot status -i INVENTORY`: the cluster compared with the inventory, read through the first control plane,
and every node's certificates with their days left."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from kubeboot.contract import CONTROL_PLANE
from kubeboot.derived import setting
from kubeboot.errors import UsageError
from kubeboot.inventory.validate import has_errors, validate_sources
from kubeboot.status import certificates, remote, report
from kubeboot.status.compare import Status, compare

EPILOG = f"""\
Exit codes: {report.EXIT_OK} the cluster is as the inventory declares; {report.EXIT_DRIFT} drift (a label, taint,
annotation, role, version, node, CNI or pod range differs) or a certificate within kube_certificate_warn_days of
expiry; {remote.EXIT_UNREACHABLE} the cluster cannot be reached or read through the first control plane (nothing
shown), or a node's certificates cannot be read (the rest shown); 2 bad arguments or an inventory with errors.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status", help="compare the running cluster with the inventory (read-only)",
        description="Connect over SSH to the first control plane as the inventory says (ansible_host, ansible_port, "
                    "ansible_user, ansible_ssh_private_key_file), read the cluster with kubectl and the admin "
                    "kubeconfig there, and show nodes, labels, taints, the pod network and NFS exports against "
                    "the inventory; then, over SSH to each node at once, each control plane's certificates "
                    "(kubeadm certs check-expiration) and every node's kubelet client certificate with their days "
                    "left, marked within kube_certificate_warn_days of expiry. Changes nothing.",
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
    workers = [h.name for h in inventory.cluster_hosts() if h.name not in control_planes]
    variables = remote.connection_variables_of(args.inventory, [*control_planes, *workers])
    conn = remote.connection(first, variables[first], known_hosts=args.known_hosts, accept_new=args.accept_new,
                             timeout=args.timeout)
    objects, first_certificates = remote.read_cluster(conn)
    status = compare(inventory, objects, conn.where)
    _read_certificates(args, status, first_certificates, variables=variables, settings=inventory.cluster,
                       control_planes=control_planes, workers=workers)
    if args.json:
        print(json.dumps(report.to_json(status), indent=2))
    else:
        print(report.table(status))
    return report.exit_code(status)


def _read_certificates(args: argparse.Namespace, status: Status, first: certificates.NodeCertificates, *,
                       variables: dict[str, dict[str, Any]], settings: dict[str, Any], control_planes: list[str],
                       workers: list[str]) -> None:
    """The certificates of the other inventory hosts that are nodes of the cluster, read at once, into ``status``."""
    nodes = {n.name for n in status.nodes if n.in_cluster and n.in_inventory}
    found: dict[str, certificates.NodeCertificates] = {first.name: first}
    reads: list[tuple[remote.Connection, bool]] = []
    for name in [*control_planes[1:], *workers]:
        if name not in nodes:
            continue  # not a node yet: the node table says so
        try:
            reads.append((remote.connection(name, variables[name], known_hosts=args.known_hosts,
                                            accept_new=args.accept_new, timeout=args.timeout), name in control_planes))
        except UsageError as exc:
            found[name] = certificates.NodeCertificates(name, name, name in control_planes, errors=[str(exc)])
    for node in remote.read_all_certificates(reads):
        found[node.name] = node
    warn_days = int(str(setting(settings, "kube_certificate_warn_days")))
    status.certificates = [found[n] for n in [*control_planes, *workers] if n in found]
    status.certificate_warn_days = warn_days
    status.certificate_warnings = certificates.warnings(status.certificates, warn_days, args.inventory)

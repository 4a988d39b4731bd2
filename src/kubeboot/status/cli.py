"""`kubeboot status -i INVENTORY`: the cluster compared with the inventory, read through the first control plane,
every node's certificates with their days left, and with kube_control_plane_lb keepalived the API endpoint as each
control plane sees it (who holds the VIP, keepalived, haproxy's backends)."""

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
from kubeboot.status import certificates, endpoint, remote, report
from kubeboot.status.compare import Status, compare

EPILOG = f"""\
Exit codes: {report.EXIT_OK} the cluster is as the inventory declares; {report.EXIT_DRIFT} drift (a label, taint,
annotation, role, version, node, CNI or pod range differs; with kube_control_plane_lb keepalived, the VIP held by
no control plane or by two, keepalived or haproxy not active, a backend not UP or not the inventory's) or a
certificate within kube_certificate_warn_days of expiry; {remote.EXIT_UNREACHABLE} the cluster cannot be reached or
read through the first control plane (nothing shown but the API endpoint, if read), or a node's certificates or API
endpoint cannot be read (the rest shown); 2 bad arguments or an inventory with errors.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status", help="compare the running cluster with the inventory (read-only)",
        description="Connect over SSH to the first control plane as the inventory says (ansible_host, ansible_port, "
                    "ansible_user, ansible_ssh_private_key_file), read the cluster with kubectl and the admin "
                    "kubeconfig there, and show nodes, labels, taints, the pod network, NFS exports and every "
                    "node's versions (the kubelet; the control planes' components from their mirror pods) with "
                    "the version skew against the inventory; then, over SSH to each node at once, each control "
                    "plane's certificates "
                    "(kubeadm certs check-expiration) and every node's kubelet client certificate with their days "
                    "left, marked within kube_certificate_warn_days of expiry; with kube_control_plane_lb "
                    "keepalived, on each control plane whether it holds the VIP, keepalived's and haproxy's state "
                    "and haproxy's backends (its stats socket). Changes nothing.",
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
    api = endpoint.endpoint_of(inventory.cluster, control_planes) if endpoint.wanted(inventory.cluster) else None
    try:
        objects, first_certificates, first_endpoint = remote.read_cluster(conn, api.vip if api else "")
    except remote.UnreachableError as exc:
        if api is not None and exc.endpoint is not None:
            _endpoint_anyway(args, api, exc, variables=variables, control_planes=control_planes)
        raise
    status = compare(inventory, objects, conn.where, args.inventory)
    status.endpoint = api
    _read_certificates(args, status, first_certificates, first_endpoint, variables=variables,
                       settings=inventory.cluster, control_planes=control_planes, workers=workers)
    if args.json:
        print(json.dumps(report.to_json(status), indent=2))
    else:
        print(report.table(status))
    return report.exit_code(status)


def _connections(args: argparse.Namespace, names: list[str], variables: dict[str, dict[str, Any]],
                 control_planes: list[str]) -> tuple[list[tuple[remote.Connection, bool]], dict[str, str]]:
    """The connection to each of ``names`` (with whether it is a control plane), and why a name has none."""
    reads: list[tuple[remote.Connection, bool]] = []
    failed: dict[str, str] = {}
    for name in names:
        try:
            reads.append((remote.connection(name, variables[name], known_hosts=args.known_hosts,
                                            accept_new=args.accept_new, timeout=args.timeout), name in control_planes))
        except UsageError as exc:
            failed[name] = str(exc)
    return reads, failed


def _endpoint_anyway(args: argparse.Namespace, api: endpoint.Endpoint, error: remote.UnreachableError, *,
                     variables: dict[str, dict[str, Any]], control_planes: list[str]) -> None:
    """The cluster could not be read (``error``, which carries the first control plane's endpoint): the API endpoint
    as every control plane sees it, shown before the error (which the caller raises)."""
    first = error.endpoint
    assert first is not None
    reads, failed = _connections(args, control_planes[1:], variables, control_planes)
    found = {first.name: first, **{n: endpoint.NodeEndpoint(n, n, errors=[e]) for n, e in failed.items()}}
    for _, node in remote.read_all_nodes(reads, api.vip):
        if node is not None:
            found[node.name] = node
    api.nodes = [found[n] for n in control_planes if n in found]
    if args.json:
        print(json.dumps({"error": str(error), "endpoint": api.as_dict(),
                          "drift": [d.as_dict() for d in api.problems()], "exit_code": remote.EXIT_UNREACHABLE},
                         indent=2))
    else:
        print("\n".join(report.endpoint_lines(api)[1:]))


def _read_certificates(args: argparse.Namespace, status: Status, first: certificates.NodeCertificates,
                       first_endpoint: endpoint.NodeEndpoint | None, *, variables: dict[str, dict[str, Any]],
                       settings: dict[str, Any], control_planes: list[str], workers: list[str]) -> None:
    """The certificates of the other inventory hosts that are nodes of the cluster, and with the API endpoint
    (``status.endpoint``) every control plane's view of it, read at once, into ``status``."""
    nodes = {n.name for n in status.nodes if n.in_cluster and n.in_inventory}
    api = status.endpoint
    found: dict[str, certificates.NodeCertificates] = {first.name: first}
    seen: dict[str, endpoint.NodeEndpoint] = {first_endpoint.name: first_endpoint} if first_endpoint else {}
    # Not a node yet: the node table says so (a control plane's haproxy and keepalived are still read).
    names = [n for n in [*control_planes[1:], *workers] if n in nodes or (api and n in control_planes)]
    reads, failed = _connections(args, names, variables, control_planes)
    for name, error in failed.items():
        found[name] = certificates.NodeCertificates(name, name, name in control_planes, errors=[error])
        if api is not None and name in control_planes:
            seen[name] = endpoint.NodeEndpoint(name, name, errors=[error])
    for node, view in remote.read_all_nodes(reads, api.vip if api else ""):
        if node.name in nodes or node.name == first.name:
            found[node.name] = node
        if view is not None:
            seen[view.name] = view
    if api is not None:
        api.nodes = [seen[n] for n in control_planes if n in seen]
    warn_days = int(str(setting(settings, "kube_certificate_warn_days")))
    status.certificates = [found[n] for n in [*control_planes, *workers] if n in found]
    status.certificate_warn_days = warn_days
    status.certificate_warnings = certificates.warnings(status.certificates, warn_days, args.inventory)

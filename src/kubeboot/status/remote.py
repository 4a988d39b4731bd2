"""Reading the cluster through the first control plane, and every node's certificates: the SSH connection the
inventory gives for each host and one script per host (read-only). On the first control plane the script runs
kubectl with the admin kubeconfig (only `kubectl get`: the nodes, the CNI, the control planes' mirror pods, ...)
and reads its certificates; on the other nodes it reads only their certificates. With kube_control_plane_lb
keepalived, every control plane's script also reads the API endpoint there (the VIP, keepalived, haproxy's
backends).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeboot.discover.gather import MARKER, split_sections
from kubeboot.discover.ssh import DEFAULT_KNOWN_HOSTS, Connector, SshError, SshOptions, run_script
from kubeboot.discover.targets import Target
from kubeboot.errors import KubebootError, UsageError
from kubeboot.inventory.load import check_sources, plain
from kubeboot.status import certificates, endpoint
from kubeboot.status.compare import ClusterObjects, objects_from_json

EXIT_UNREACHABLE = 4
ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf"

# The connection variables status honours, as Ansible's ssh connection reads them.
CONNECTION_VARIABLES = ("ansible_host", "ansible_port", "ansible_user", "ansible_ssh_private_key_file",
                        "ansible_ssh_common_args", "ansible_ssh_extra_args")

# (section, kubectl arguments, required): each runs as `kubectl --kubeconfig ADMIN get ... -o json`.
QUERIES: tuple[tuple[str, str, bool], ...] = (
    ("nodes", "nodes", True),
    ("daemonsets", "daemonsets --all-namespaces", False),
    ("kubeadm-config", "--namespace kube-system configmap kubeadm-config", False),
    ("flannel-config", "--namespace kube-flannel configmap kube-flannel-cfg", False),
    ("flannel-config-old", "--namespace kube-system configmap kube-flannel-cfg", False),
    ("calico-installation", "installations.operator.tigera.io default", False),
    ("calico-pools", "ippools.crd.projectcalico.org", False),
    # kubeadm's mirror pods of the control planes' static pods: each component's image tag, node by node.
    ("control-plane-pods", "--namespace kube-system pods --selector tier=control-plane", False),
)


class UnreachableError(KubebootError):
    """The cluster could not be reached or read through the first control plane."""

    exit_code = EXIT_UNREACHABLE
    # The first control plane's API endpoint, when it was read although the cluster was not (it often says why).
    endpoint: endpoint.NodeEndpoint | None = None


def _query_lines() -> str:
    lines = []
    for section, args, _ in QUERIES:
        lines.append(f"q {section} {args}")
    return "\n".join(lines)


def status_script(vip: str = "") -> str:
    """The script for the first control plane: kubectl, its certificates, and the API endpoint when ``vip`` is
    given (kube_control_plane_lb keepalived). Once `kubectl get nodes` failed the other queries are skipped."""
    return f"""\
LC_ALL=C; export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
s() {{ printf '\\n{MARKER}%s@@\\n' "$1"; }}
K={ADMIN_KUBECONFIG}
SUDO=
s preflight
if [ "$(id -u)" != 0 ]; then
  if ! sudo -n true 2>/dev/null; then echo "sudo-refused $(id -un)"; s end; exit 0; fi
  SUDO="sudo -n"
fi
if ! command -v kubectl >/dev/null 2>&1; then echo no-kubectl; s end; exit 0; fi
if ! $SUDO test -r "$K"; then echo no-kubeconfig; s end; exit 0; fi
echo ok
err=$(mktemp) || exit 1
down=
q() {{
  name=$1; shift
  if [ -n "$down" ]; then s "$name.rc"; echo skipped; return; fi
  s "$name"; $SUDO kubectl --kubeconfig "$K" --request-timeout=20s get "$@" -o json 2>"$err"
  rc=$?; s "$name.rc"; echo $rc; s "$name.err"; tail -n 3 "$err"
  if [ "$name" = nodes ] && [ "$rc" != 0 ]; then down=1; fi
}}
{_query_lines()}
{certificates.script_part(control_plane=True)}{endpoint.script_part(vip) if vip else ""}rm -f "$err"
s end
exit 0
"""


STATUS_SCRIPT = status_script()


def certificates_script(control_plane: bool, vip: str = "") -> str:
    """The script for a node other than the first control plane: its certificates, and on a control plane the API
    endpoint when ``vip`` is given (kube_control_plane_lb keepalived)."""
    return f"""\
LC_ALL=C; export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
s() {{ printf '\\n{MARKER}%s@@\\n' "$1"; }}
SUDO=
s preflight
if [ "$(id -u)" != 0 ]; then
  if ! sudo -n true 2>/dev/null; then echo "sudo-refused $(id -un)"; s end; exit 0; fi
  SUDO="sudo -n"
fi
echo ok
err=$(mktemp) || exit 1
{certificates.script_part(control_plane)}{endpoint.script_part(vip) if vip and control_plane else ""}rm -f "$err"
s end
exit 0
"""


@dataclass(frozen=True)
class Connection:
    """How to reach the first control plane, from its inventory variables."""

    name: str
    target: Target
    ssh: SshOptions

    @property
    def where(self) -> str:
        port = self.target.port or self.ssh.port
        return f"{self.name} ({self.target.user or self.ssh.user or 'your user'}@{self.target.host}:{port})"


def known_hosts_from_args(*args: str) -> Path | None:
    """The UserKnownHostsFile an `ansible_ssh_common_args`/`_extra_args` value sets (the first file), if any."""
    for text in args:
        try:
            words = shlex.split(text)
        except ValueError:
            continue
        for index, word in enumerate(words):
            option = word
            if word == "-o" and index + 1 < len(words):
                option = words[index + 1]
            elif word.startswith("-o"):
                option = word[2:]
            else:
                continue
            key, sep, value = option.partition("=")
            if not sep:
                key, _, value = option.partition(" ")
            if key.strip().lower() == "userknownhostsfile" and value.strip():
                return Path(value.split()[0])
    return None


def connection(name: str, variables: Mapping[str, Any], *, known_hosts: Path | None, accept_new: bool,
               timeout: float) -> Connection:
    """The SSH connection to ``name``: ansible_host (else the name), ansible_port, ansible_user,
    ansible_ssh_private_key_file; known_hosts from the argument, else UserKnownHostsFile in ansible_ssh_*_args."""
    host = str(variables.get("ansible_host") or name)
    port_value = variables.get("ansible_port")
    port = 22
    if port_value not in (None, ""):
        try:
            port = int(str(port_value))
        except ValueError:
            raise UsageError(f"{name}: ansible_port = {port_value!r} must be a number from 1 to 65535") from None
        if not 0 < port < 65536:
            raise UsageError(f"{name}: ansible_port = {port} must be a number from 1 to 65535")
    key_value = variables.get("ansible_ssh_private_key_file")
    key = Path(str(key_value)).expanduser() if key_value else None
    if key is not None and not key.is_file():
        raise UsageError(f"{name}: ansible_ssh_private_key_file = {key_value}: no such file; fix the variable "
                         "or leave it out to use ssh-agent and ~/.ssh keys")
    if known_hosts is None:
        known_hosts = known_hosts_from_args(str(variables.get("ansible_ssh_common_args") or ""),
                                            str(variables.get("ansible_ssh_extra_args") or ""))
    user = variables.get("ansible_user")
    return Connection(name=name, target=Target(spec=name, host=host, port=port, name=name),
                      ssh=SshOptions(user=str(user) if user else None, port=port, key_file=key,
                                     known_hosts=known_hosts or DEFAULT_KNOWN_HOSTS, accept_new=accept_new,
                                     timeout=timeout))


def connection_variables(sources: Sequence[str], name: str) -> dict[str, Any]:
    """``name``'s connection variables as Ansible resolves them (group_vars, host_vars and templates included)."""
    return connection_variables_of(sources, [name])[name]


def connection_variables_of(sources: Sequence[str], names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The connection variables of each of ``names``, from one reading of the inventory."""
    from ansible.errors import AnsibleError  # noqa: PLC0415 - Ansible is imported only when an inventory is read
    from ansible.inventory.manager import InventoryManager  # noqa: PLC0415
    from ansible.parsing.dataloader import DataLoader  # noqa: PLC0415
    from ansible.template import Templar  # noqa: PLC0415
    from ansible.vars.manager import VariableManager  # noqa: PLC0415

    loader = DataLoader()
    found: dict[str, dict[str, Any]] = {}
    name = names[0] if names else ""
    try:
        manager = InventoryManager(loader=loader, sources=check_sources(sources))
        variables = VariableManager(loader=loader, inventory=manager)
        variables.safe_basedir = False
        for name in names:
            host = manager.get_host(name)
            raw = variables.get_vars(host=host, include_hostvars=False)
            templar = Templar(loader=loader, variables=raw)
            found[name] = {key: plain(templar.template(raw[key])) for key in CONNECTION_VARIABLES if key in raw}
    except AnsibleError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"{name}: its connection variables cannot be read: {first}") from exc
    return found


FIXES = {
    "unreachable": "check ansible_host of {name} and that the controller can reach it",
    "refused": "check ansible_port of {name} and that sshd runs there",
    "timeout": "check ansible_host and ansible_port of {name}, or give a longer --timeout",
    "auth": "check ansible_user and ansible_ssh_private_key_file of {name} (or load the key into ssh-agent)",
    "ssh": "check that {name} runs sshd on ansible_port",
}


def _fail(conn: Connection, problem: str, fix: str = "") -> UnreachableError:
    return UnreachableError(f"cannot read the cluster through {conn.where}: {problem}" + (f"; {fix}" if fix else ""))


def read_cluster(conn: Connection, vip: str = "") -> tuple[ClusterObjects, certificates.NodeCertificates,
                                                          endpoint.NodeEndpoint | None]:
    """Run the status script on the first control plane; what kubectl printed there, its certificates, and with
    ``vip`` the API endpoint there (else None). When the cluster cannot be read, the UnreachableError carries the
    endpoint if it was read."""
    try:
        with Connector(conn.ssh) as connector, connector.connect(conn.target) as client:
            result = run_script(client, status_script(vip), max(conn.ssh.timeout, 30.0))
    except SshError as exc:
        raise _fail(conn, str(exc), FIXES.get(exc.kind, "").format(name=conn.name)) from None
    except UsageError as exc:  # an unreadable private key
        raise _fail(conn, str(exc).replace("--key ", "ansible_ssh_private_key_file "),
                    f"fix ansible_ssh_private_key_file of {conn.name}") from None
    seen = endpoint.parse(conn.name, conn.where, vip, result.stdout) if vip else None
    try:
        objects = parse_output(conn, result.stdout, result.stderr, result.exit_status)
    except UnreachableError as exc:
        exc.endpoint = seen if seen is not None and "endpoint-vip" in split_sections(result.stdout) else None
        raise
    return objects, certificates.parse(conn.name, conn.where, True, result.stdout), seen


NodeRead = tuple[certificates.NodeCertificates, endpoint.NodeEndpoint | None]


def read_node(conn: Connection, control_plane: bool, connector: Connector | None = None, vip: str = "") -> NodeRead:
    """Run the certificates script on one node (through ``connector`` when given, else its own): its certificates,
    and on a control plane with ``vip`` the API endpoint there (else None). Never raises: what went wrong is the
    node's one error line (in both)."""
    def failed(problem: str, fix: str = "") -> NodeRead:
        line = problem + (f"; {fix}" if fix else "")
        return (certificates.NodeCertificates(conn.name, conn.where, control_plane, errors=[line]),
                endpoint.NodeEndpoint(conn.name, conn.where, errors=[line]) if vip and control_plane else None)

    try:
        with ExitStack() as stack:
            if connector is None:
                connector = stack.enter_context(Connector(conn.ssh))
            client = stack.enter_context(connector.connect(conn.target))
            result = run_script(client, certificates_script(control_plane, vip), max(conn.ssh.timeout, 30.0))
    except SshError as exc:
        return failed(str(exc), FIXES.get(exc.kind, "").format(name=conn.name))
    except UsageError as exc:  # an unreadable private key
        return failed(str(exc).replace("--key ", "ansible_ssh_private_key_file "),
                      f"fix ansible_ssh_private_key_file of {conn.name}")
    except KubebootError as exc:
        return failed(str(exc))
    preflight = split_sections(result.stdout).get("preflight", "").strip()
    if preflight.startswith("sudo-refused"):
        return failed(f"{preflight.split()[-1]} is not root and `sudo -n` is refused, so the certificates cannot "
                      "be read", f"set ansible_user of {conn.name} to root or to a user with passwordless sudo")
    if preflight != "ok":
        last = (result.stderr.strip().splitlines() or [f"exit status {result.exit_status}"])[-1]
        return failed(f"the certificates script was cut short ({last})", f"check that {conn.name} has a POSIX sh")
    return (certificates.parse(conn.name, conn.where, control_plane, result.stdout),
            endpoint.parse(conn.name, conn.where, vip, result.stdout) if vip and control_plane else None)


def read_certificates(conn: Connection, control_plane: bool,
                      connector: Connector | None = None) -> certificates.NodeCertificates:
    """``read_node`` without the API endpoint: one node's certificates."""
    return read_node(conn, control_plane, connector)[0]


def read_all_certificates(conns: Sequence[tuple[Connection, bool]],
                          parallel: int = 16) -> list[certificates.NodeCertificates]:
    """``read_certificates`` on each (connection, control plane) at once, in order (see ``read_all_nodes``)."""
    return [found for found, _ in read_all_nodes(conns, parallel=parallel)]


def read_all_nodes(conns: Sequence[tuple[Connection, bool]], vip: str = "", parallel: int = 16) -> list[NodeRead]:
    """``read_node`` on each (connection, control plane) at once, at most ``parallel`` at a time, in order;
    the nodes with the same SSH options share one connector (one key load, one known_hosts)."""
    if not conns:
        return []
    with ExitStack() as stack:
        connectors: dict[SshOptions, Connector | None] = {}
        for conn, _ in conns:
            if conn.ssh not in connectors:
                try:
                    connectors[conn.ssh] = stack.enter_context(Connector(conn.ssh))
                except UsageError:
                    connectors[conn.ssh] = None  # read_certificates reports it for each of its nodes
        with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(conns)))) as pool:
            return list(pool.map(lambda item: read_node(item[0], item[1], connectors[item[0].ssh], vip), conns))


def parse_output(conn: Connection, stdout: str, stderr: str = "", exit_status: int = 0) -> ClusterObjects:
    """``ClusterObjects`` from the status script's output; UnreachableError for what stops the status."""
    sections = split_sections(stdout)
    preflight = sections.get("preflight", "").strip()
    if "end" not in sections or not preflight:
        last = (stderr.strip().splitlines() or [f"exit status {exit_status}"])[-1]
        raise _fail(conn, f"the status script was cut short ({last})", f"check that {conn.name} has a POSIX sh")
    if preflight.startswith("sudo-refused"):
        user = preflight.split()[-1]
        raise _fail(conn, f"{user} is not root and `sudo -n` is refused, so {ADMIN_KUBECONFIG} cannot be read",
                    f"set ansible_user of {conn.name} to root or to a user with passwordless sudo")
    if preflight == "no-kubectl":
        raise _fail(conn, "kubectl is not installed there",
                    f"is {conn.name} the first control plane of a cluster formed by site.yml?")
    if preflight == "no-kubeconfig":
        raise _fail(conn, f"{ADMIN_KUBECONFIG} is missing", "form the cluster first (site.yml)")
    documents: dict[str, Any] = {}
    failures: dict[str, str] = {}  # an optional query's section -> why it gave nothing
    for section, args, required in QUERIES:
        rc = sections.get(f"{section}.rc", "").strip()
        error = sections.get(f"{section}.err", "").strip().splitlines()
        if rc != "0":
            if required:
                raise _fail(conn, f"`kubectl get {args}` failed: {error[-1] if error else 'exit ' + rc}",
                            f"check the API server on {conn.name} (crictl ps; journalctl -u kubelet)")
            failures[section] = (f"`kubectl get {args}` failed: {error[-1] if error else 'exit ' + rc}" if rc
                                 else f"`kubectl get {args}` was not run")
            continue
        try:
            documents[section] = json.loads(sections.get(section, ""))
        except json.JSONDecodeError:
            if required:
                raise _fail(conn, f"`kubectl get {args}` printed no JSON") from None
            failures[section] = f"`kubectl get {args}` printed no JSON"
    return objects_from_json(
        documents.get("nodes"), daemonsets=documents.get("daemonsets"), kubeadm_config=documents.get("kubeadm-config"),
        flannel_config=documents.get("flannel-config") or documents.get("flannel-config-old"),
        calico_installation=documents.get("calico-installation"), calico_pools=documents.get("calico-pools"),
        control_plane_pods=documents.get("control-plane-pods"),
        control_plane_pods_error=failures.get("control-plane-pods", ""))

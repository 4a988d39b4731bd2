"""Each node's certificates for `kubeboot status`: the shell that reads them (one part of each node's one script),
what it printed parsed into rows with their days left, and the warnings for those within
``kube_certificate_warn_days`` of expiry. Pure functions; the SSH is in ``remote``.

Control planes: `kubeadm certs check-expiration` (both tables, parsed by ``kubeboot.certs``). Every node: the
kubelet's client certificate, ``/var/lib/kubelet/pki/kubelet-client-current.pem``, of which only the certificate
blocks are printed (the file also holds the key) and read here for their notAfter.
"""

from __future__ import annotations

import datetime as dt
import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from kubeboot import certs
from kubeboot.discover.gather import split_sections

KUBELET_CLIENT = "/var/lib/kubelet/pki/kubelet-client-current.pem"
KUBELET_NAME = "kubelet-client-current.pem"
PKI_CA = "/etc/kubernetes/pki/ca.crt"
CA_ROTATION = "https://kubernetes.io/docs/tasks/tls/manual-rotation-of-ca-certificates/"

# Prints the complete certificate blocks of a PEM file and nothing else: a block is held back until its END line,
# and a PRIVATE KEY line drops what is held, so no part of a key is ever printed.
_CERT_BLOCKS = ("awk '/-----BEGIN CERTIFICATE-----/ {c = 1; b = \"\"} /PRIVATE KEY/ {c = 0; b = \"\"} "
                "c {b = b $0 \"\\n\"} /-----END CERTIFICATE-----/ {if (c) printf \"%s\", b; c = 0}'")


def script_part(control_plane: bool) -> str:
    """The shell that prints a node's certificate sections; it runs after the script's preflight (which sets
    ``SUDO``), with ``s`` printing section markers and ``$err`` a scratch file. Reads only."""
    lines = []
    if control_plane:
        lines += [
            "s check-expiration",
            ': >"$err"',
            "if ! command -v kubeadm >/dev/null 2>&1; then r=no-kubeadm",
            f'elif ! $SUDO test -e {PKI_CA}; then r=no-pki',
            'else $SUDO kubeadm certs check-expiration 2>"$err"; r=$?; fi',
            's check-expiration.rc; echo "$r"; s check-expiration.err; tail -n 3 "$err"',
        ]
    lines += [
        "s kubelet-client",
        f"if $SUDO test -e {KUBELET_CLIENT}; then $SUDO {_CERT_BLOCKS} {KUBELET_CLIENT} || echo unreadable",
        "else echo missing; fi",
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Row:
    """One certificate, kubeconfig, authority or kubelet client certificate of a node."""

    name: str
    kind: str  # certificate, kubeconfig, authority, kubelet
    expires: str  # ISO 8601; "" when missing
    days_left: float | None  # None when missing
    authority: str = ""  # the CA that signed it, as kubeadm names it
    externally_managed: bool = False
    missing: bool = False

    def state(self, warn_days: int) -> str:
        """ok, WARN (within warn_days), EXPIRED, missing, or external (kubeadm leaves it to the operator)."""
        if self.missing or self.days_left is None:
            return "missing"
        if self.externally_managed:
            return "external"
        if self.days_left < 0:
            return "EXPIRED"
        return "WARN" if self.days_left < warn_days else "ok"

    def as_dict(self, warn_days: int) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "expires": self.expires or None, "days_left": self.days_left,
                "authority": self.authority or None, "externally_managed": self.externally_managed,
                "missing": self.missing, "state": self.state(warn_days)}


@dataclass
class NodeCertificates:
    """What a node's certificates are, or why they could not be read (one line each)."""

    name: str
    where: str  # name (user@host:port)
    control_plane: bool
    rows: list[Row] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def marked(self, warn_days: int) -> list[Row]:
        return [r for r in self.rows if r.state(warn_days) in ("WARN", "EXPIRED")]


def kubeadm_rows(report: dict[str, list[dict[str, Any]]]) -> list[Row]:
    """Rows from ``certs.parse_expiration``: certificates and kubeconfigs first, then the authorities."""
    rows = []
    for table in ("certificates", "authorities"):
        for c in report.get(table, []):
            kind = "authority" if table == "authorities" else "kubeconfig" if c["name"].endswith(".conf") \
                else "certificate"
            rows.append(Row(name=c["name"], kind=kind, expires=c["expires"], days_left=c["days_left"],
                            authority=c["authority"], externally_managed=c["externally_managed"],
                            missing=c["missing"]))
    return rows


def kubelet_row(pem: str, now: dt.datetime) -> Row | str:
    """The kubelet client certificate's row from the certificate blocks printed, or a one-line problem."""
    text = pem.strip()
    if text == "missing":
        return Row(name=KUBELET_NAME, kind="kubelet", expires="", days_left=None, missing=True)
    if "BEGIN CERTIFICATE" not in text:
        return f"{KUBELET_CLIENT} holds no certificate that can be read"
    try:
        cert = x509.load_pem_x509_certificates(text.encode())[0]
    except ValueError as exc:
        return f"{KUBELET_CLIENT}: not a certificate ({exc})"
    expires = cert.not_valid_after_utc
    return Row(name=KUBELET_NAME, kind="kubelet", expires=expires.isoformat(),
               days_left=round((expires - now).total_seconds() / 86400, 3))


def parse(name: str, where: str, control_plane: bool, output: str,
          now: dt.datetime | None = None) -> NodeCertificates:
    """A node's certificates from its script's output (its certificate sections; other sections are ignored)."""
    current = now or dt.datetime.now(dt.UTC)
    sections = split_sections(output)
    found = NodeCertificates(name=name, where=where, control_plane=control_plane)
    if control_plane:
        rc = sections.get("check-expiration.rc", "").strip()
        error = (sections.get("check-expiration.err", "").strip().splitlines() or [f"exit {rc}"])[-1]
        if rc == "0":
            found.rows += kubeadm_rows(certs.parse_expiration(sections.get("check-expiration", ""), current))
            if not found.rows:
                found.errors.append("`kubeadm certs check-expiration` listed no certificate")
        elif rc == "no-kubeadm":
            found.errors.append("kubeadm is not installed there, so its certificates cannot be listed")
        elif rc == "no-pki":
            found.errors.append(f"{PKI_CA} is missing: not a control plane formed by kubeadm")
        elif rc:
            found.errors.append(f"`kubeadm certs check-expiration` failed: {error}")
        else:
            found.errors.append("`kubeadm certs check-expiration` did not run (the script was cut short)")
    if "kubelet-client" in sections:
        kubelet = kubelet_row(sections["kubelet-client"], current)
        if isinstance(kubelet, Row):
            found.rows.append(kubelet)
        else:
            found.errors.append(kubelet)
    else:
        found.errors.append(f"{KUBELET_CLIENT} was not read (the script was cut short)")
    return found


def renew_command(sources: Sequence[str]) -> str:
    """`ansible-playbook -i INVENTORY playbooks/certs.yml` with the inventories status was given."""
    words = ["ansible-playbook"]
    for source in sources:
        words += ["-i", source]
    return shlex.join([*words, "playbooks/certs.yml"])


def days(row: Row) -> str:
    """Whole days left, rounded down (so 0 for a certificate that has hours left, -1 once it has expired)."""
    return "-" if row.days_left is None else str(math.floor(row.days_left))


def warnings(nodes: Sequence[NodeCertificates], warn_days: int, sources: Sequence[str]) -> list[str]:
    """One line per node and kind of fix: the certificates kubeadm renews (playbooks/certs.yml), the authorities
    (by hand), the kubelet's (rotated by the kubelet); and one per node whose certificates could not be read."""
    lines = []
    for node in nodes:
        marked = node.marked(warn_days)
        renewable = [r for r in marked if r.kind in ("certificate", "kubeconfig")]
        if renewable:
            listed = ", ".join(f"{r.name} ({days(r)} days left)" for r in renewable)
            lines.append(f"WARNING: {node.name}: {len(renewable)} certificate(s) expire within {warn_days} days: "
                         f"{listed}; renew them with `{renew_command(sources)}`")
        for row in marked:
            if row.kind == "authority":
                lines.append(f"WARNING: {node.name}: certificate authority {row.name} expires within {warn_days} "
                             f"days ({days(row)} days left); kubeadm does not renew authorities: rotate it by hand "
                             f"({CA_ROTATION})")
            elif row.kind == "kubelet":
                lines.append(f"WARNING: {node.name}: the kubelet client certificate {KUBELET_CLIENT} expires within "
                             f"{warn_days} days ({days(row)} days left); the kubelet renews it itself: check "
                             f"`journalctl -u kubelet` on {node.name} and that its certificate signing requests "
                             "are approved (kubectl get csr)")
        lines += [f"WARNING: {node.where}: certificates not read: {error}" for error in node.errors]
    return lines

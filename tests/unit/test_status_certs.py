"""`kubeboot status`, certificates: the shell that prints them (run for real on a kubelet PEM), the parsing of
`kubeadm certs check-expiration` as kubeadm 1.33 prints it and of the kubelet client certificate, the marks, the
warning lines with their fix, the tables and the JSON."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kubeboot.status import certificates, remote, report
from kubeboot.status.certificates import KUBELET_CLIENT, NodeCertificates
from kubeboot.status.compare import CniStatus, PodRanges, Status

NOW = dt.datetime(2026, 12, 6, 12, 0, 30, tzinfo=dt.UTC)
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
# kubeadm 1.33's rows (cmd/kubeadm/app/phases/certs/renewal), sorted by name, with the CA that signs each.
LEAVES = [("admin.conf", "ca"), ("apiserver", "ca"), ("apiserver-etcd-client", "etcd-ca"),
          ("apiserver-kubelet-client", "ca"), ("controller-manager.conf", "ca"),
          ("etcd-healthcheck-client", "etcd-ca"), ("etcd-peer", "etcd-ca"), ("etcd-server", "etcd-ca"),
          ("front-proxy-client", "front-proxy-ca"), ("scheduler.conf", "ca"), ("super-admin.conf", "ca")]
AUTHORITIES = ["ca", "etcd-ca", "front-proxy-ca"]


def _expires(when: dt.datetime) -> str:
    return f"{MONTHS[when.month - 1]} {when.day:02d}, {when.year} {when.hour:02d}:{when.minute:02d} UTC"


def _residual(seconds: float) -> str:
    """apimachinery's ShortHumanDuration, as kubeadm's RESIDUAL TIME column."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 3600:
        return f"{max(s, 0) // 60}m"
    if s < 86400:
        return f"{s // 3600}h"
    return f"{s // 86400}d" if s < 86400 * 365 else f"{int(s / 86400 / 365)}y"


def _table(rows: list[list[str]]) -> str:
    """Go's tabwriter (minwidth 10, padding 3), the last cell as it is."""
    widths = [max(10, max(len(r[c]) for r in rows) + 3) for c in range(len(rows[0]) - 1)]
    return "".join("".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)) + r[-1] + "\n" for r in rows)


def check_expiration(now: dt.datetime, validity: dt.timedelta, *, ca_validity: dt.timedelta = dt.timedelta(
        days=3650), missing: tuple[str, ...] = ()) -> str:
    """What `kubeadm certs check-expiration` prints on a control plane whose certificates were issued a minute ago
    (the EXPIRES column has minutes only, so each is rounded down to its minute)."""
    issued = now - dt.timedelta(minutes=1)
    leaf_end, ca_end = issued + validity, issued + ca_validity
    head = ["CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY", "EXTERNALLY MANAGED"]
    rows = [head] + [[name, _expires(leaf_end), _residual((leaf_end - now).total_seconds()), ca, "no"]
                     for name, ca in LEAVES if name not in missing]
    first = _table(rows) + "".join(f"!MISSING! {name}\n" for name in missing)
    ca_rows = [["CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME", "EXTERNALLY MANAGED"]]
    ca_rows += [[name, _expires(ca_end), _residual((ca_end - now).total_seconds()), "no"] for name in AUTHORITIES]
    return ('[check-expiration] Reading configuration from the "kubeadm-config" ConfigMap in namespace '
            '"kube-system"...\n[check-expiration] Use \'kubeadm init phase upload-config kubeadm --config '
            "your-config-file' to re-upload it.\n\n" + first + "\n" + _table(ca_rows))


def kubelet_pem(node: str, not_after: dt.datetime, *, with_key: bool = False) -> str:
    """A kubelet client certificate as the kubelet writes kubelet-client-current.pem: certificate, then key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                         x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node}")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")]))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(not_after - dt.timedelta(days=365)).not_valid_after(not_after)
        .sign(key, hashes.SHA256()))
    text = cert.public_bytes(serialization.Encoding.PEM).decode()
    if with_key:
        text += key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()).decode()
    return text


def certificate_sections(*, expiration: str | None, rc: str = "0", err: str = "", kubelet: str = "missing") -> str:
    """The certificate sections of a node's script output: check-expiration's (control planes), the kubelet's."""
    out = ""
    if expiration is not None:
        out += (f"\n@@kubeboot check-expiration@@\n{expiration}\n@@kubeboot check-expiration.rc@@\n{rc}\n"
                f"\n@@kubeboot check-expiration.err@@\n{err}\n")
    return out + f"\n@@kubeboot kubelet-client@@\n{kubelet}\n"


def sections(*, expiration: str | None, rc: str = "0", err: str = "", kubelet: str = "missing") -> str:
    """What a node's certificates script prints."""
    return ("\n@@kubeboot preflight@@\nok\n" + certificate_sections(expiration=expiration, rc=rc, err=err,
                                                                    kubelet=kubelet) + "\n@@kubeboot end@@\n")


def healthy_sections(node: str, control_plane: bool, now: dt.datetime) -> str:
    """The certificate sections of a node whose certificates were issued for a year a minute ago."""
    year = dt.timedelta(days=365)
    return certificate_sections(expiration=check_expiration(now, year) if control_plane else None,
                                kubelet=kubelet_pem(node, now + year))


def healthy(node: str, control_plane: bool, now: dt.datetime) -> str:
    return "\n@@kubeboot preflight@@\nok\n" + healthy_sections(node, control_plane, now) + "\n@@kubeboot end@@\n"


def test_the_script_parts_are_valid_sh_and_read_only() -> None:
    for script in (remote.STATUS_SCRIPT, remote.certificates_script(True), remote.certificates_script(False)):
        assert subprocess.run(["sh", "-n"], input=script, text=True, check=False).returncode == 0
    assert "kubeadm certs check-expiration" in remote.STATUS_SCRIPT
    assert "kubeadm" not in remote.certificates_script(False) and KUBELET_CLIENT in remote.certificates_script(False)
    for script in (remote.STATUS_SCRIPT, remote.certificates_script(True)):
        assert "renew" not in script and " rm " not in script.replace('rm -f "$err"', "")


def test_only_the_certificate_of_the_kubelet_pem_is_printed_never_its_key(tmp_path: Path) -> None:
    pem = tmp_path / "kubelet-client-current.pem"
    pem.write_text(kubelet_pem("worker1", NOW, with_key=True))
    command = certificates.script_part(False).splitlines()[1].split("then ", 1)[1].split(" || ")[0]
    printed = subprocess.run(["sh", "-c", command.replace("$SUDO ", "").replace(KUBELET_CLIENT, str(pem))],
                             capture_output=True, text=True, check=True).stdout
    assert printed.startswith("-----BEGIN CERTIFICATE-----") and printed.rstrip().endswith("CERTIFICATE-----")
    assert "PRIVATE" not in printed and printed.count("BEGIN") == 1
    # A certificate block cut short by a key prints nothing of either.
    pem.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----BEGIN EC PRIVATE KEY-----\nsecret\n"
                   "-----END EC PRIVATE KEY-----\n-----END CERTIFICATE-----\n")
    printed = subprocess.run(["sh", "-c", command.replace("$SUDO ", "").replace(KUBELET_CLIENT, str(pem))],
                             capture_output=True, text=True, check=True).stdout
    assert printed == ""
    row = certificates.kubelet_row(kubelet_pem("worker1", NOW + dt.timedelta(days=200)), NOW)
    assert isinstance(row, certificates.Row) and row.days_left == 200.0 and row.kind == "kubelet"


def test_a_control_plane_with_short_lived_certificates_is_parsed_and_marked() -> None:
    output = sections(expiration=check_expiration(NOW, dt.timedelta(hours=2)),
                      kubelet=kubelet_pem("cp1", NOW + dt.timedelta(hours=1, minutes=59)))
    node = certificates.parse("cp1", "cp1 (root@10.213.17.11:22)", True, "motd\n" + output, NOW)
    assert node.errors == []
    assert [r.name for r in node.rows] == [n for n, _ in LEAVES] + AUTHORITIES + ["kubelet-client-current.pem"]
    kinds = {r.name: r.kind for r in node.rows}
    assert kinds["admin.conf"] == "kubeconfig" and kinds["apiserver"] == "certificate" and kinds["ca"] == "authority"
    apiserver = next(r for r in node.rows if r.name == "apiserver")
    assert apiserver.days_left == round((dt.timedelta(hours=1, minutes=59) - dt.timedelta(seconds=30)) /
                                        dt.timedelta(days=1), 3)
    assert apiserver.authority == "ca" and apiserver.expires == "2026-12-06T13:59:00+00:00"
    assert {r.name: r.state(30) for r in node.rows if r.kind != "authority"} == {
        n: "WARN" for n in [*(n for n, _ in LEAVES), "kubelet-client-current.pem"]}
    assert all(r.state(30) == "ok" for r in node.rows if r.kind == "authority")
    assert certificates.days(apiserver) == "0"


def test_missing_expired_and_external_rows_and_what_stops_a_node() -> None:
    expired = check_expiration(NOW, dt.timedelta(days=-2), missing=("super-admin.conf",))
    node = certificates.parse("cp2", "cp2 (root@10.213.17.12:22)", True, sections(expiration=expired), NOW)
    states = {r.name: r.state(30) for r in node.rows}
    assert states["super-admin.conf"] == "missing" and states["apiserver"] == "EXPIRED"
    assert states["kubelet-client-current.pem"] == "missing" and node.errors == []
    assert certificates.days(next(r for r in node.rows if r.name == "apiserver")) == "-3"
    external = certificates.Row("apiserver", "certificate", "2026-12-07T12:00:00+00:00", 1.0, "ca", True)
    assert external.state(30) == "external"

    failed = certificates.parse("cp2", "cp2", True, sections(
        expiration="", rc="1", err="error: failed to load admin kubeconfig"), NOW)
    assert failed.errors == ["`kubeadm certs check-expiration` failed: error: failed to load admin kubeconfig"]
    assert [r.name for r in failed.rows] == ["kubelet-client-current.pem"]
    no_pki = certificates.parse("cp2", "cp2", True, sections(expiration="", rc="no-pki"), NOW)
    assert no_pki.errors == ["/etc/kubernetes/pki/ca.crt is missing: not a control plane formed by kubeadm"]
    cut = certificates.parse("worker1", "worker1", False, "\n@@kubeboot preflight@@\nok\n", NOW)
    assert cut.errors == [f"{KUBELET_CLIENT} was not read (the script was cut short)"]
    garbled = certificates.parse("worker1", "worker1", False, sections(expiration=None, kubelet="unreadable"), NOW)
    assert garbled.errors == [f"{KUBELET_CLIENT} holds no certificate that can be read"]


def _status(*nodes: NodeCertificates, sources: tuple[str, ...] = ("inventory/prod/hosts.yml",)) -> Status:
    status = Status(through="cp1 (root@10.213.17.11:22)", nodes=[], nfs=None,
                    cni=CniStatus(expected="flannel", found=["flannel"], sources=[]),
                    pod_ranges=PodRanges(expected="10.244.0.0/16", node_mask=24, cluster="10.244.0.0/16", cni={}))
    status.certificates = list(nodes)
    status.certificate_warn_days = 30
    status.certificate_warnings = certificates.warnings(status.certificates, 30, sources)
    return status


def test_warnings_name_host_certificates_days_left_and_the_fix() -> None:
    cp1 = certificates.parse("cp1", "cp1 (root@10.213.17.11:22)", True, sections(
        expiration=check_expiration(NOW, dt.timedelta(days=12), ca_validity=dt.timedelta(days=20)),
        kubelet=kubelet_pem("cp1", NOW + dt.timedelta(days=5))), NOW)
    cp2 = certificates.parse("cp2", "cp2 (root@10.213.17.12:22)", True, healthy("cp2", True, NOW), NOW)
    worker1 = NodeCertificates("worker1", "worker1 (root@10.213.17.13:22)", False,
                               errors=["connection refused; check ansible_port of worker1 and that sshd runs there"])
    lines = certificates.warnings([cp1, cp2, worker1], 30, ["inventory/prod/hosts.yml", "extra dir"])
    assert len(lines) == 6, lines
    assert lines[0].startswith("WARNING: cp1: 11 certificate(s) expire within 30 days: admin.conf (11 days left), "
                               "apiserver (11 days left), ")
    assert "super-admin.conf (11 days left)" in lines[0]
    assert lines[0].endswith("; renew them with `ansible-playbook -i inventory/prod/hosts.yml -i 'extra dir' "
                             "playbooks/certs.yml`")
    assert lines[1].startswith("WARNING: cp1: certificate authority ca expires within 30 days (19 days left); "
                               "kubeadm does not renew authorities")
    assert lines[4].startswith(f"WARNING: cp1: the kubelet client certificate {KUBELET_CLIENT} expires within 30 "
                               "days (5 days left); the kubelet renews it itself")
    assert lines[5] == ("WARNING: worker1 (root@10.213.17.13:22): certificates not read: connection refused; check "
                        "ansible_port of worker1 and that sshd runs there")
    assert certificates.warnings([cp2], 30, ["hosts.yml"]) == []
    assert report.exit_code(_status(cp2)) == 0
    assert report.exit_code(_status(cp1, cp2)) == 3
    assert report.exit_code(_status(cp1, cp2, worker1)) == 4


def test_the_table_shows_each_node_its_rows_marks_and_the_unread() -> None:
    cp1 = certificates.parse("cp1", "cp1 (root@10.213.17.11:22)", True, sections(
        expiration=check_expiration(NOW, dt.timedelta(hours=2)),
        kubelet=kubelet_pem("cp1", NOW + dt.timedelta(hours=2))), NOW)
    worker1 = certificates.parse("worker1", "worker1 (root@10.213.17.13:22)", False, healthy("worker1", False, NOW),
                                 NOW)
    cp2 = NodeCertificates("cp2", "cp2 (root@10.213.17.12:22)", True,
                           errors=["connection timed out after 10s; check ansible_host and ansible_port of cp2"])
    text = report.table(_status(cp1, cp2, worker1))
    lines = text.splitlines()
    start = lines.index("Certificates (whole days left; marked within kube_certificate_warn_days = 30 days of "
                        "expiry):")
    assert lines[start + 1] == "  cp1 (root@10.213.17.11:22), control plane:"
    assert lines[start + 2].split() == ["NAME", "KIND", "EXPIRES", "DAYS", "LEFT", "STATE"]
    assert lines[start + 3].split() == ["admin.conf", "kubeconfig", "2026-12-06", "13:59", "UTC", "0", "WARN"]
    assert lines[start + 4].split() == ["apiserver", "certificate", "2026-12-06", "13:59", "UTC", "0", "WARN"]
    assert lines[start + 14].split() == ["ca", "authority", "2036-12-03", "11:59", "UTC", "3649", "ok"]
    assert lines[start + 17].split() == ["kubelet-client-current.pem", "kubelet", "2026-12-06", "14:00", "UTC", "0",
                                         "WARN"]
    assert lines[start + 18] == ("  cp2 (root@10.213.17.12:22), control plane: not read: connection timed out after "
                                 "10s; check ansible_host and ansible_port of cp2")
    assert lines[start + 19] == "  worker1 (root@10.213.17.13:22), worker:"
    assert lines[start + 21].split()[:2] == ["kubelet-client-current.pem", "kubelet"]
    assert lines[start + 21].split()[-2:] == ["365", "ok"]
    assert "no drift: the cluster is as the inventory declares" in lines
    tail = lines[lines.index("no drift: the cluster is as the inventory declares") + 2:]
    assert [line.split(":")[0] + ":" + line.split(":")[1] for line in tail] == [
        "WARNING: cp1", "WARNING: cp1", "WARNING: cp2 (root@10.213.17.12"]

    document = report.to_json(_status(cp1, cp2, worker1))
    assert document["certificate_warn_days"] == 30 and document["exit_code"] == 4
    assert document["warnings"] == _status(cp1, cp2, worker1).certificate_warnings


def test_json_gives_each_node_its_certificates() -> None:
    cp1 = certificates.parse("cp1", "cp1 (root@10.213.17.11:22)", True, sections(
        expiration=check_expiration(NOW, dt.timedelta(hours=2))), NOW)
    row = cp1.rows[1].as_dict(30)
    assert row == {"name": "apiserver", "kind": "certificate", "expires": "2026-12-06T13:59:00+00:00",
                   "days_left": cp1.rows[1].days_left, "authority": "ca", "externally_managed": False,
                   "missing": False, "state": "WARN"}
    assert report.certificates_json(cp1, 30) == {
        "where": "cp1 (root@10.213.17.11:22)", "control_plane": True, "read": True, "errors": [],
        "items": [r.as_dict(30) for r in cp1.rows]}
    assert report.certificates_json(None, 30) is None

"""kubeadm certs check-expiration / renew and the validity settings, against the stand-in (kubeadm 1.33 shapes)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import KUBECTL, NODE_PYTHON, free_port, standin_env
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding
from kubeboot_standin import certs
from kubeboot_standin.kubeadm.renewal import short_human_duration
from nodesim import Node
from test_kubeadm_flow import cluster_base, init_config, wait

LEAVES = [
    ("admin.conf", "ca"),
    ("apiserver", "ca"),
    ("apiserver-etcd-client", "etcd-ca"),
    ("apiserver-kubelet-client", "ca"),
    ("controller-manager.conf", "ca"),
    ("etcd-healthcheck-client", "etcd-ca"),
    ("etcd-peer", "etcd-ca"),
    ("etcd-server", "etcd-ca"),
    ("front-proxy-client", "front-proxy-ca"),
    ("scheduler.conf", "ca"),
    ("super-admin.conf", "ca"),
]
FILES = {
    "apiserver": "pki/apiserver",
    "apiserver-etcd-client": "pki/apiserver-etcd-client",
    "apiserver-kubelet-client": "pki/apiserver-kubelet-client",
    "etcd-healthcheck-client": "pki/etcd/healthcheck-client",
    "etcd-peer": "pki/etcd/peer",
    "etcd-server": "pki/etcd/server",
    "front-proxy-client": "pki/front-proxy-client",
    "ca": "pki/ca",
    "etcd-ca": "pki/etcd/ca",
    "front-proxy-ca": "pki/front-proxy-ca",
}
RENEWED = [
    "certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself renewed",
    "certificate for serving the Kubernetes API renewed",
    "certificate the apiserver uses to access etcd renewed",
    "certificate for the API server to connect to kubelet renewed",
    "certificate embedded in the kubeconfig file for the controller manager to use renewed",
    "certificate for liveness probes to healthcheck etcd renewed",
    "certificate for etcd nodes to communicate with each other renewed",
    "certificate for serving etcd renewed",
    "certificate for the front proxy client renewed",
    "certificate embedded in the kubeconfig file for the scheduler manager to use renewed",
    "certificate embedded in the kubeconfig file for the super-admin renewed",
]
DONE = (
    "Done renewing certificates. You must restart the kube-apiserver, kube-controller-manager, kube-scheduler and "
    "etcd, so that they can use the new certificates."
)
READ = [
    '[{p}] Reading configuration from the "kubeadm-config" ConfigMap in namespace "kube-system"...',
    "[{p}] Use 'kubeadm init phase upload-config kubeadm --config your-config-file' to re-upload it.",
]
# kubeadm 1.33's header lines, as the real command prints them
HEADER = (
    "CERTIFICATE                EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED"
)
CA_HEADER = "CERTIFICATE AUTHORITY   EXPIRES                  RESIDUAL TIME   EXTERNALLY MANAGED"
LONG = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncertificateValidityPeriod: 8760h\n"


def read_lines(prefix: str) -> list[str]:
    return [line.format(p=prefix) for line in READ]


def cert_of(etc: Path, name: str) -> x509.Certificate:
    if name.endswith(".conf"):
        return x509.load_pem_x509_certificate(certs.read_kubeconfig(etc / name)["cert_pem"])
    return certs.load_cert(etc / f"{FILES[name]}.crt")


def snapshot(etc: Path) -> dict[str, bytes]:
    return {str(p.relative_to(etc)): p.read_bytes() for p in sorted(etc.rglob("*")) if p.is_file()}


def expires(cert: x509.Certificate) -> str:
    return f"{certs.not_after(cert):%b %d, %Y %H:%M} UTC"


def not_before(cert: x509.Certificate) -> dt.datetime:
    return cert.not_valid_before_utc


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        ca.public_key().verify(  # type: ignore[call-arg,union-attr]
            cert.signature,
            cert.tbs_certificate_bytes,
            padding.PKCS1v15(),  # type: ignore[arg-type]
            cert.signature_hash_algorithm,  # type: ignore[arg-type]
        )
    except Exception:
        return False
    return True


def sans(cert: x509.Certificate) -> list[str]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [*ext.get_values_for_type(x509.DNSName), *(str(i) for i in ext.get_values_for_type(x509.IPAddress))]


@pytest.mark.parametrize(
    ("seconds", "want"),
    [
        (-3, "<invalid>"),
        (-2, "<invalid>"),
        (-1.9, "0s"),
        (-1, "0s"),
        (0, "0s"),
        (59, "59s"),
        (60, "1m"),
        (3599, "59m"),
        (3600, "1h"),
        (7199, "1h"),
        (86399, "23h"),
        (86400, "1d"),
        (172799, "1d"),
        (365 * 86400 - 1, "364d"),
        (365 * 86400, "1y"),
        (10 * 365 * 86400 - 1, "9y"),
        (10 * 365 * 86400, "10y"),
    ],
)
def test_short_human_duration_thresholds(seconds: float, want: str) -> None:
    assert short_human_duration(seconds) == want


# --- offline: a PKI under a test root, no API server -----------------------------------------------------------


@dataclass
class Offline:
    root: Path

    @property
    def etc(self) -> Path:
        return self.root / "etc/kubernetes"

    def kubeadm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [NODE_PYTHON, "-m", "kubeboot_standin.kubeadm.cli", *args],
            env=standin_env(self.root),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def config(self, name: str, text: str) -> str:
        p = self.root.parent / name
        p.write_text(text)
        return str(p)


@pytest.fixture
def offline(tmp_path: Path) -> Offline:
    o = Offline(tmp_path / "root")
    (o.root / "root").mkdir(parents=True)
    port = free_port()  # nothing listens there: the cluster cannot be read
    cfg = o.config(
        "init.yaml",
        f"apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n"
        f"localAPIEndpoint: {{advertiseAddress: 127.0.0.1, bindPort: {port}}}\nnodeRegistration: {{name: cp1}}\n"
        "---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncertificateValidityPeriod: 2h\n",
    )
    for phase in ("certs", "kubeconfig"):
        out = o.kubeadm("init", "phase", phase, "all", "--config", cfg)
        assert out.returncode == 0, out.stderr
    return o


def test_unreadable_cluster_falls_back_to_defaults_and_missing_rows(offline: Offline) -> None:
    (offline.etc / "pki/front-proxy-client.crt").unlink()
    out = offline.kubeadm("certs", "check-expiration")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    assert lines[:4] == [
        *read_lines("check-expiration"),
        "[check-expiration] Error reading configuration from the Cluster. Falling back to default configuration",
        "",
    ]
    # "!MISSING! front-proxy-client" is the widest first cell: 28 + 3
    widths = [31, 25, 16, 24]
    missing = next(line for line in lines if line.startswith("!MISSING!"))
    assert missing == "!MISSING! front-proxy-client".ljust(31) + " " * sum(widths[1:])
    head = lines[4]
    assert head == "CERTIFICATE".ljust(31) + HEADER[27:]
    admin = cert_of(offline.etc, "admin.conf")
    assert lines[5] == "admin.conf".ljust(31) + expires(admin).ljust(25) + "1h".ljust(16) + "ca".ljust(24) + "no      "
    ca_rows = lines[lines.index(CA_HEADER) + 1 : -1]
    assert [r.split()[0] for r in ca_rows] == ["ca", "etcd-ca", "front-proxy-ca"]
    assert all(r.split()[6] == "9y" for r in ca_rows)  # the 10 years of caCertificateValidityPeriod's default


def test_renew_all_with_config_file(offline: Offline) -> None:
    (offline.etc / "pki/front-proxy-client.crt").unlink()
    (offline.etc / "pki/front-proxy-client.key").unlink()
    before = {n: cert_of(offline.etc, n) for n, _ in LEAVES if n != "front-proxy-client"}
    ca_before = {n: cert_of(offline.etc, n).serial_number for n in ("ca", "etcd-ca", "front-proxy-ca")}
    kc_before = {n: json.dumps(_without_user(offline.etc / n)) for n, _ in LEAVES if n.endswith(".conf")}
    out = offline.kubeadm("certs", "renew", "all", "--config", offline.config("long.yaml", LONG))
    assert out.returncode == 0, out.stderr
    want = [*RENEWED]
    want[8] = "MISSING! certificate for the front proxy client"
    assert out.stdout == "\n".join([*want, "", DONE, ""])
    assert not (offline.etc / "pki/front-proxy-client.crt").exists()
    for name, ca_name in LEAVES:
        if name == "front-proxy-client":
            continue
        new, old = cert_of(offline.etc, name), before[name]
        assert new.serial_number != old.serial_number, name
        assert new.public_key().public_numbers() != old.public_key().public_numbers(), name  # type: ignore[union-attr]
        assert new.subject == old.subject, name
        assert certs.not_after(new) - not_before(new) == dt.timedelta(hours=8760, minutes=5), name
        assert signed_by(new, cert_of(offline.etc, ca_name)), name
    assert sans(cert_of(offline.etc, "apiserver")) == sans(before["apiserver"])
    assert {n: cert_of(offline.etc, n).serial_number for n in ca_before} == ca_before
    assert {n: json.dumps(_without_user(offline.etc / n)) for n in kc_before} == kc_before
    listing = offline.kubeadm("certs", "check-expiration", "--config", offline.config("long.yaml", LONG))
    rows = listing.stdout.split("\n")
    assert rows[0] == "CERTIFICATE".ljust(31) + HEADER[27:]  # the MISSING row widens column one
    residual = {r.split()[0]: r.split()[6] for r in rows[1:12] if not r.startswith("!")}
    assert set(residual.values()) == {"364d"}, residual
    # only the named certificate is touched by a single renewal
    snap = snapshot(offline.etc)
    out = offline.kubeadm("certs", "renew", "etcd-peer", "--config", offline.config("long.yaml", LONG))
    assert out.stdout == "certificate for etcd nodes to communicate with each other renewed\n"
    changed = {k for k, v in snapshot(offline.etc).items() if snap.get(k) != v}
    assert changed == {"pki/etcd/peer.crt", "pki/etcd/peer.key"}


def _without_user(path: Path) -> dict[str, object]:
    import yaml

    cfg = yaml.safe_load(path.read_text())
    for u in cfg["users"]:
        u["user"].pop("client-certificate-data")
        u["user"].pop("client-key-data")
    return cfg  # type: ignore[no-any-return]


def test_external_etcd_has_no_etcd_rows_and_json_output(offline: Offline) -> None:
    cfg = offline.config(
        "external.yaml",
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
        "etcd: {external: {endpoints: ['https://10.0.0.9:2379'], caFile: /x, certFile: /y, keyFile: /z}}\n",
    )
    out = offline.kubeadm("certs", "check-expiration", "--config", cfg)
    assert out.returncode == 0, out.stderr
    names = [line.split()[0] for line in out.stdout.split("\n") if line and not line.startswith("CERTIFICATE")]
    assert names == [n for n, ca in LEAVES if ca != "etcd-ca"] + ["ca", "front-proxy-ca"]
    doc = json.loads(offline.kubeadm("certs", "check-expiration", "--config", cfg, "-o", "json").stdout)
    assert list(doc) == ["kind", "apiVersion", "certificates", "certificateAuthorities"]
    assert (doc["kind"], doc["apiVersion"]) == ("CertificateExpirationInfo", "output.kubeadm.k8s.io/v1alpha3")
    first = doc["certificates"][0]
    assert list(first) == ["name", "expirationDate", "residualTime", "externallyManaged", "caName", "missing"]
    assert first["name"] == "admin.conf" and first["caName"] == "ca" and 7000 < first["residualTime"] < 7200
    assert "caName" not in doc["certificateAuthorities"][0]
    # no "Reading configuration" lines on structured output, even when the cluster is tried
    assert offline.kubeadm("certs", "check-expiration", "-o", "json").stdout.startswith("{\n")


def test_fault_marker_fails_renew_at_that_certificate(offline: Offline) -> None:
    faults = offline.root / "etc/kubeboot-standin/faults"
    faults.mkdir(parents=True)
    (faults / "certs-renew").write_text("etcd-peer\n")
    peer = (offline.etc / "pki/etcd/peer.crt").read_bytes()
    out = offline.kubeadm("certs", "renew", "all", "--config", offline.config("long.yaml", LONG))
    assert out.returncode == 1
    assert out.stdout == "\n".join([*RENEWED[:6], ""])
    assert out.stderr.startswith("failed to renew certificate etcd-peer: fault injected by marker\n")
    assert not (faults / "certs-renew").exists()
    assert (offline.etc / "pki/etcd/peer.crt").read_bytes() == peer
    assert offline.kubeadm("certs", "renew", "all", "--config", offline.config("long.yaml", LONG)).returncode == 0


# --- a control plane with certificateValidityPeriod 2h and caCertificateValidityPeriod 48h ------------------------


@dataclass
class Plane:
    node: Node
    port: int

    @property
    def etc(self) -> Path:
        return self.node.root / "etc/kubernetes"


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    base, port = cluster_base(tmp_path_factory, "standin-certs")
    cp = Node(base, "cp1")
    try:
        cp.start_kubelet_service()
        cfg = base / "init.yaml"
        cfg.write_text(
            init_config(port).replace(
                "kind: ClusterConfiguration\n",
                "kind: ClusterConfiguration\ncertificateValidityPeriod: 2h\ncaCertificateValidityPeriod: 48h\n",
            )
        )
        out = cp.kubeadm("init", "--config", str(cfg))
        assert out.returncode == 0, out.stderr + cp.kubelet_log()
        yield Plane(cp, port)
    finally:
        cp.stop()


def test_validity_settings_and_the_exact_table(plane: Plane) -> None:
    out = plane.node.kubeadm("certs", "check-expiration")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    assert lines[:3] == [*read_lines("check-expiration"), ""]
    assert lines[3] == HEADER
    starts = [HEADER.index(h) for h in ("EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY", "EXTERNALLY MANAGED")]
    assert starts == [27, 52, 68, 92]
    for line, (name, ca_name) in zip(lines[4:15], LEAVES, strict=True):
        cert = cert_of(plane.etc, name)
        assert certs.not_after(cert) - not_before(cert) == dt.timedelta(hours=2, minutes=5), name
        assert line == name.ljust(27) + expires(cert).ljust(25) + "1h".ljust(16) + ca_name.ljust(24) + "no      "
        assert all(line[s - 3 : s] == "   " and line[s] != " " for s in starts)
    assert lines[15:17] == ["", CA_HEADER]
    for line, name in zip(lines[17:20], ("ca", "etcd-ca", "front-proxy-ca"), strict=True):
        cert = cert_of(plane.etc, name)
        assert certs.not_after(cert) - not_before(cert) == dt.timedelta(hours=48, minutes=5), name
        assert line == name.ljust(24) + expires(cert).ljust(25) + "1d".ljust(16) + "no      "  # 47h59m: 1d
    assert lines[20:] == [""]


def test_renew_one_from_the_cluster_configuration(plane: Plane) -> None:
    snap = snapshot(plane.etc)
    old = cert_of(plane.etc, "apiserver")
    out = plane.node.kubeadm("certs", "renew", "apiserver")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n") == [
        *read_lines("renew"),
        "",
        "certificate for serving the Kubernetes API renewed",
        "",
    ]
    changed = {k for k, v in snapshot(plane.etc).items() if snap.get(k) != v}
    assert changed == {"pki/apiserver.crt", "pki/apiserver.key"}
    new = cert_of(plane.etc, "apiserver")
    assert new.serial_number != old.serial_number
    assert sans(new) == sans(old)
    assert {"kubernetes.default.svc", "cp1", "10.96.0.1", "127.0.0.1"} <= set(sans(new))
    assert new.subject == old.subject
    assert certs.not_after(new) - not_before(new) == dt.timedelta(hours=2, minutes=5)  # certificateValidityPeriod


def _served_serial(port: int) -> int | None:
    try:
        pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=2)
    except OSError:
        return None
    return x509.load_pem_x509_certificate(pem.encode()).serial_number


def test_renew_all_capped_at_the_ca_and_apiserver_restart(plane: Plane) -> None:
    ca_serials = {n: cert_of(plane.etc, n).serial_number for n in ("ca", "etcd-ca", "front-proxy-ca")}
    cfg = plane.node.root.parent / "long.yaml"
    cfg.write_text(LONG)
    out = plane.node.kubeadm("certs", "renew", "all", "--config", str(cfg))
    assert out.returncode == 0, out.stderr
    assert out.stdout == "\n".join([*RENEWED, "", DONE, ""])
    for name, ca_name in LEAVES:  # 8760h asked, but a leaf never outlives its CA (48h)
        assert certs.not_after(cert_of(plane.etc, name)) == certs.not_after(cert_of(plane.etc, ca_name)), name
    assert {n: cert_of(plane.etc, n).serial_number for n in ca_serials} == ca_serials
    listing = plane.node.kubeadm("certs", "check-expiration").stdout.split("\n")
    assert {line.split()[6] for line in listing[4:15]} == {"1d"}
    # the kubelet restarts the API server when its manifest goes away and comes back: it serves the new cert
    manifest = plane.etc / "manifests/kube-apiserver.yaml"
    aside = plane.node.root / "kube-apiserver.yaml"
    shutil.move(manifest, aside)
    wait(lambda: _served_serial(plane.port) is None)
    shutil.move(aside, manifest)
    new_serial = cert_of(plane.etc, "apiserver").serial_number
    wait(lambda: _served_serial(plane.port) == new_serial)
    kubectl = [str(KUBECTL), "--kubeconfig", str(plane.etc / "admin.conf"), "get", "nodes", "-o", "name"]
    wait(lambda: subprocess.run(kubectl, capture_output=True, text=True, check=False).returncode == 0)
    assert "node/cp1" in subprocess.run(kubectl, capture_output=True, text=True, check=True).stdout

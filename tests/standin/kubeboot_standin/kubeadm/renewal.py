"""`kubeadm certs check-expiration` and `kubeadm certs renew` as kubeadm 1.33 does them (cmd/kubeadm/app/cmd/certs.go
and phases/certs/renewal): the certificates of the local PKI and the client certificates embedded in the
kubeconfig files, sorted by name; CAs are only reported, never renewed."""

from __future__ import annotations

import argparse
import base64
import dataclasses
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509

from .. import certs, config, faults, paths, tabwriter
from ..client import Client
from .cluster import fetch_cluster_configuration
from .common import config_warnings
from .files import say

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
# CA name -> base name of its files in the certificates directory
CAS = {"ca": "ca", "etcd-ca": "etcd/ca", "front-proxy-ca": "front-proxy-ca"}


@dataclass(frozen=True)
class Handler:
    """renewal.CertificateRenewHandler: Name, LongName, FileName (PKI base name or kubeconfig file), CAName."""

    name: str
    long_name: str
    file: str
    ca: str

    @property
    def kubeconfig(self) -> bool:
        return self.name.endswith(".conf")

    @property
    def etcd(self) -> bool:
        return self.ca == "etcd-ca"


HANDLERS = sorted(
    [
        Handler(
            "admin.conf",
            "certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself",
            "admin.conf",
            "ca",
        ),
        Handler("apiserver", "certificate for serving the Kubernetes API", "apiserver", "ca"),
        Handler(
            "apiserver-etcd-client", "certificate the apiserver uses to access etcd", "apiserver-etcd-client", "etcd-ca"
        ),
        Handler(
            "apiserver-kubelet-client",
            "certificate for the API server to connect to kubelet",
            "apiserver-kubelet-client",
            "ca",
        ),
        Handler(
            "controller-manager.conf",
            "certificate embedded in the kubeconfig file for the controller manager to use",
            "controller-manager.conf",
            "ca",
        ),
        Handler(
            "etcd-healthcheck-client",
            "certificate for liveness probes to healthcheck etcd",
            "etcd/healthcheck-client",
            "etcd-ca",
        ),
        Handler("etcd-peer", "certificate for etcd nodes to communicate with each other", "etcd/peer", "etcd-ca"),
        Handler("etcd-server", "certificate for serving etcd", "etcd/server", "etcd-ca"),
        Handler("front-proxy-client", "certificate for the front proxy client", "front-proxy-client", "front-proxy-ca"),
        Handler(
            "scheduler.conf",
            "certificate embedded in the kubeconfig file for the scheduler manager to use",
            "scheduler.conf",
            "ca",
        ),
        Handler(
            "super-admin.conf",
            "certificate embedded in the kubeconfig file for the super-admin",
            "super-admin.conf",
            "ca",
        ),
    ],
    key=lambda h: h.name,
)
NAMES = [h.name for h in HANDLERS]


def add_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config")
    p.add_argument("--cert-dir", default="/etc/kubernetes/pki")
    p.add_argument("--kubeconfig", default="/etc/kubernetes/admin.conf")
    p.add_argument("--v", "-v", default="0")


def short_human_duration(seconds: float) -> str:
    """apimachinery's duration.ShortHumanDuration (the integer parts of seconds, minutes, hours, as Go's int())."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 60:
        return f"{s}s"
    if s // 60 < 60:
        return f"{s // 60}m"
    hours = s // 3600
    if hours < 24:
        return f"{hours}h"
    if hours < 24 * 365:
        return f"{hours // 24}d"
    return f"{int(s / 3600 / 24 / 365)}y"


def expires(when: dt.datetime) -> str:
    """Go's Format("Jan 02, 2006 15:04 MST") of a UTC time."""
    w = when.astimezone(dt.UTC)
    return f"{MONTHS[w.month - 1]} {w.day:02d}, {w.year} {w.hour:02d}:{w.minute:02d} UTC"


def settings(args: argparse.Namespace, prefix: str, text: bool = True) -> config.ClusterSettings:
    """certs.go getInternalCfg: the kubeadm-config ConfigMap through --kubeconfig unless --config is given (then
    --cert-dir, default /etc/kubernetes/pki, overrides its certificatesDir); when the cluster cannot be read, the
    --config file or the defaults."""
    out = say if text else (lambda _msg: None)
    if not args.config:
        try:
            client: Client | None = Client.from_kubeconfig(paths.host(args.kubeconfig), timeout=5)
        except Exception:  # kubeconfigutil.ClientSetFromFile failed: no file, no usable credentials
            client = None
        if client is not None:
            try:
                cs = config.cluster_settings(fetch_cluster_configuration(client, prefix, out), paths.VERSION)
            except Exception:
                out(f"[{prefix}] Error reading configuration from the Cluster. Falling back to default configuration\n")
            else:
                out("")
                return dataclasses.replace(cs, certificates_dir=args.cert_dir)
    cdoc = None
    if args.config:
        docs = config.split_documents(Path(args.config).read_text(), strict=False)
        config_warnings(docs.warnings)
        cdoc = docs.docs.get("ClusterConfiguration")
    cs = config.cluster_settings(cdoc, paths.VERSION)
    return cs if args.config else dataclasses.replace(cs, certificates_dir=args.cert_dir)


def handlers(cs: config.ClusterSettings) -> list[Handler]:
    """GetDefaultCertList, or GetCertsWithoutEtcd with an external etcd."""
    external = bool((cs.raw.get("etcd") or {}).get("external"))
    return [h for h in HANDLERS if not (external and h.etcd)]


def cas(cs: config.ClusterSettings) -> list[str]:
    external = bool((cs.raw.get("etcd") or {}).get("external"))
    return [n for n in sorted(CAS) if not (external and n == "etcd-ca")]


class Files:
    """The renewal manager's read-writers for one cluster configuration."""

    def __init__(self, cs: config.ClusterSettings) -> None:
        self.cs = cs
        self.pki = paths.host(cs.certificates_dir)

    def kubeconfig_path(self, h: Handler) -> Path:
        return paths.host(f"{paths.ETC_K8S}/{h.file}")

    def exists(self, h: Handler) -> bool:
        return (self.kubeconfig_path(h) if h.kubeconfig else self.pki / f"{h.file}.crt").exists()

    def _user(self, cfg: dict[str, Any]) -> dict[str, Any]:
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == cfg.get("current-context"))
        return next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])  # type: ignore[no-any-return]

    def read(self, h: Handler) -> x509.Certificate:
        if h.kubeconfig:
            cfg = yaml.safe_load(self.kubeconfig_path(h).read_text())
            return x509.load_pem_x509_certificate(base64.b64decode(self._user(cfg)["client-certificate-data"]))
        return certs.load_cert(self.pki / f"{h.file}.crt")

    def write(self, h: Handler, pair: certs.KeyPair) -> None:
        if not h.kubeconfig:
            certs.write_pair(self.pki, h.file, pair)
            return
        path = self.kubeconfig_path(h)
        cfg = yaml.safe_load(path.read_text())
        user = self._user(cfg)
        user["client-certificate-data"] = certs.b64(pair.cert_pem())
        user["client-key-data"] = certs.b64(pair.key_pem())
        certs.write_kubeconfig(path, cfg)

    def ca_exists(self, name: str) -> bool:
        return (self.pki / f"{CAS[name]}.crt").exists()

    def externally_managed(self, ca: str) -> bool:
        """UsingExternalCA / UsingExternalFrontProxyCA: the CA certificate without its key; never for etcd."""
        return ca != "etcd-ca" and self.ca_exists(ca) and not (self.pki / f"{CAS[ca]}.key").exists()


def _entry(name: str, cert: x509.Certificate | None, now: dt.datetime, ca: str, managed: bool) -> dict[str, Any]:
    """output.kubeadm.k8s.io/v1alpha3 Certificate (caName omitted when empty, as `omitempty`)."""
    if cert is None:
        return {"name": name, "expirationDate": None, "residualTime": 0, "externallyManaged": False, "missing": True}
    end = certs.not_after(cert)
    out: dict[str, Any] = {
        "name": name,
        "expirationDate": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "residualTime": int((end - now).total_seconds()),
        "externallyManaged": managed,
    }
    if ca:
        out["caName"] = ca
    out["missing"] = False
    return out


def expiration_info(cs: config.ClusterSettings, now: dt.datetime | None = None) -> dict[str, Any]:
    """fetchCertificateExpirationInfo: the CertificateExpirationInfo object."""
    now = now or dt.datetime.now(dt.UTC)
    f = Files(cs)
    crts = [
        _entry(h.name, f.read(h) if f.exists(h) else None, now, h.ca, f.externally_managed(h.ca)) for h in handlers(cs)
    ]
    auths = [
        _entry(
            n, certs.load_cert(f.pki / f"{CAS[n]}.crt") if f.ca_exists(n) else None, now, "", f.externally_managed(n)
        )
        for n in cas(cs)
    ]
    return {
        "kind": "CertificateExpirationInfo",
        "apiVersion": "output.kubeadm.k8s.io/v1alpha3",
        "certificates": crts,
        "certificateAuthorities": auths,
    }


def _row(e: dict[str, Any], with_ca: bool) -> list[str]:
    if e["missing"]:
        return [f"!MISSING! {e['name']}", "", "", *([""] if with_ca else []), ""]
    end = dt.datetime.strptime(e["expirationDate"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    yes_no = "yes" if e["externallyManaged"] else "no"
    ca = [e.get("caName", "")] if with_ca else []
    return [e["name"], expires(end), short_human_duration(e["residualTime"]), *ca, f"{yes_no:<8}"]


def expiration_text(info: dict[str, Any]) -> str:
    """certTextPrinter: tabwriter.NewWriter(w, 10, 4, 3, ' ', 0); the empty line between the tables ends the
    first table's column blocks, so each table is aligned on its own."""
    head = ["CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY", "EXTERNALLY MANAGED"]
    first = tabwriter.table([head, *(_row(e, True) for e in info["certificates"])], 10, 3)
    ca_head = ["CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME", "EXTERNALLY MANAGED"]
    second = tabwriter.table([ca_head, *(_row(e, False) for e in info["certificateAuthorities"])], 10, 3)
    return f"{first}\n{second}"


def check_expiration(args: argparse.Namespace) -> None:
    output = args.output
    if output not in ("text", "json", "yaml"):
        raise RuntimeError(
            f'could not construct output printer: unable to match a printer suitable for the output format "{output}", '
            "allowed formats are: json,yaml,text"
        )
    cs = settings(args, "check-expiration", text=output == "text")
    info = expiration_info(cs)
    if output == "json":
        print(json.dumps(info, indent=4))
    elif output == "yaml":
        print(yaml.safe_dump(info, sort_keys=True), end="")
    else:
        print(expiration_text(info), end="", flush=True)


def renew_one(f: Files, h: Handler) -> None:
    """certs.go renewCert."""
    if not f.exists(h):
        say(f"MISSING! {h.long_name}")
        return
    if f.externally_managed(h.ca):
        say(f"Detected external {CAS[h.ca]}, {h.long_name} can't be renewed")
        return
    if faults.take_if("certs-renew", h.name):
        raise RuntimeError(f"failed to renew certificate {h.name}: fault injected by marker")
    old = f.read(h)
    ca = certs.load_pair(f.pki, CAS[h.ca])
    f.write(h, certs.renew(ca, old, f.cs.cert_validity))
    say(f"{h.long_name} renewed")


def renew(args: argparse.Namespace) -> None:
    cs = settings(args, "renew")
    f = Files(cs)
    if args.name != "all":
        renew_one(f, next(h for h in HANDLERS if h.name == args.name))
        return
    for h in handlers(cs):
        renew_one(f, h)
    say(
        "\nDone renewing certificates. You must restart the kube-apiserver, kube-controller-manager, kube-scheduler "
        "and etcd, so that they can use the new certificates."
    )

"""kubeadm join: token discovery (JWS + CA pinning), kubelet TLS bootstrap, control-plane join."""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509

from .. import certs, config, paths, tokens
from ..client import ApiError, Client
from ..etcd import Etcd
from . import cluster, etcdmember, files
from .common import config_warnings, run_phases, start_kubelet, wait_for, wait_kubelet
from .files import say
from .preflight import pull_images, report, validate_ignore
from .preflight import run as preflight_run


def _b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def verify_jws(content: str, detached: str, token_id: str, token_secret: str) -> bool:
    header, _, sig = detached.partition("..")
    payload = base64.urlsafe_b64encode(content.encode()).rstrip(b"=").decode()
    expected = hmac.new(token_secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    try:
        kid = json.loads(_b64url_decode(header)).get("kid")
    except ValueError:
        return False
    return kid == token_id and hmac.compare_digest(expected, _b64url_decode(sig))


def check_pins(hashes: list[str]) -> None:
    for h in hashes:
        kind, _, value = h.partition(":")
        if not value:
            raise RuntimeError(f'invalid hash "{h}", expected a "type:value" format')
        if kind != "sha256":
            raise RuntimeError(f'unknown hash type "{kind}"')
        if len(value) != 64:
            raise RuntimeError(f'hash value "{value}" is not a valid sha256 hex digest')


class JoinData:
    def __init__(self, args: argparse.Namespace) -> None:
        text = Path(args.config).read_text() if args.config else ""
        docs = config.split_documents(text, strict=False) if text else config.Documents()
        config_warnings(docs.warnings)
        jc = docs.docs.get("JoinConfiguration")
        if args.config and jc is None:
            raise config.ConfigError("no JoinConfiguration kind was found in the configuration file")
        jc = jc or {}
        disc = (jc.get("discovery") or {}).get("bootstrapToken") or {}
        self.endpoint = args.endpoint or disc.get("apiServerEndpoint", "")
        token = args.discovery_token or args.token or disc.get("token", "")
        self.tls_token = (
            args.tls_bootstrap_token or args.token or (jc.get("discovery") or {}).get("tlsBootstrapToken") or token
        )
        self.token = token
        self.hashes = list(args.discovery_token_ca_cert_hash or disc.get("caCertHashes") or [])
        self.unsafe = bool(args.discovery_token_unsafe_skip_ca_verification or disc.get("unsafeSkipCAVerification"))
        if not token:
            raise config.ConfigError('discovery: Invalid value: "": bootstrapToken or file must be set')
        config.validate_token(token, "discovery.bootstrapToken.token")
        if not self.hashes and not self.unsafe:
            raise config.ConfigError(
                'discovery.bootstrapToken: Invalid value: "": using token-based discovery without caCertHashes can be '
                "unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass "
                "--discovery-token-unsafe-skip-ca-verification flag to continue"
            )
        if not self.endpoint:
            raise config.ConfigError("discovery.bootstrapToken.apiServerEndpoint: Required value")
        nr = dict(jc.get("nodeRegistration") or {})
        if args.node_name:
            nr["name"] = args.node_name
        if args.cri_socket:
            nr["criSocket"] = args.cri_socket
        nr.setdefault("criSocket", config.DEFAULT_CRI)
        cp = jc.get("controlPlane")
        if args.control_plane:
            cp = cp or {}
        self.control_plane = cp is not None
        if self.control_plane:
            nr.setdefault("taints", [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])
        else:
            nr.setdefault("taints", [])
        config.validate_node_registration(nr, "nodeRegistration")
        self.nr = nr
        self.node = nr.get("name") or files.node_default_name()
        self.certificate_key = args.certificate_key or (cp or {}).get("certificateKey", "")
        ep = (cp or {}).get("localAPIEndpoint") or {}
        self.address = args.apiserver_advertise_address or ep.get("advertiseAddress", "")
        self.port = int(args.apiserver_bind_port or ep.get("bindPort") or 6443)
        self.ignore = validate_ignore(args.ignore_preflight_errors, nr.get("ignorePreflightErrors") or [])
        self.skip = [*jc.get("skipPhases", []), *args.skip_phases]
        self.timeouts = jc.get("timeouts") or {}
        self.ca_pem: bytes | None = None
        self.cluster_server = ""
        self.cs: config.ClusterSettings | None = None
        self.kubelet_cfg: dict[str, Any] = {}

    def token_client(self) -> Client:
        return Client(self.cluster_server, self.ca_pem, token=self.tls_token, timeout=15)


def discover(d: JoinData) -> None:
    tid, tsecret = tokens.parse(d.token)
    insecure = Client(f"https://{d.endpoint}", None, timeout=10)
    say(f"[preflight] Discovering cluster-info from https://{d.endpoint}")

    def fetch() -> Any:
        return insecure.get("/api/v1/namespaces/kube-public/configmaps/cluster-info")

    limit = float(config.parse_duration(d.timeouts.get("discovery", "5m0s")))
    cm = wait_for("the cluster-info ConfigMap", fetch, limit)
    data = cm.get("data") or {}
    content = data.get("kubeconfig", "")
    sig = data.get(f"jws-kubeconfig-{tid}")
    if not sig:
        raise RuntimeError(
            f'couldn\'t validate the identity of the API Server: token id "{tid}" is invalid for this '
            'cluster or it has expired. Use "kubeadm token create" on the control-plane node to create '
            "a new valid token"
        )
    if not verify_jws(content, sig, tid, tsecret):
        raise RuntimeError(
            "couldn't validate the identity of the API Server: failed to verify JWS signature of "
            "received cluster info object, can't trust this API Server"
        )
    kc = yaml.safe_load(content)
    cluster_entry = kc["clusters"][0]["cluster"]
    ca_pem = base64.b64decode(cluster_entry["certificate-authority-data"])
    if not d.unsafe:
        check_pins(d.hashes)
        ca_hashes = [certs.ca_cert_hash(c) for c in _load_all(ca_pem)]
        if not set(ca_hashes) & {h.lower() for h in d.hashes}:
            raise RuntimeError(
                "couldn't validate the identity of the API Server: cluster CA found in cluster-info "
                f'ConfigMap is invalid: none of the public keys "{",".join(ca_hashes)}" are pinned'
            )
    d.ca_pem = ca_pem
    d.cluster_server = cluster_entry["server"]
    say("[preflight] Cluster info discovered and the API Server identity validated")


def _load_all(pem: bytes) -> list[x509.Certificate]:
    out = []
    for block in pem.split(b"-----END CERTIFICATE-----"):
        if b"-----BEGIN CERTIFICATE-----" in block:
            out.append(x509.load_pem_x509_certificate(block + b"-----END CERTIFICATE-----\n"))
    return out


def read_cluster_config(d: JoinData) -> None:
    c = d.token_client()
    try:
        cdoc = cluster.fetch_cluster_configuration(c, "preflight")
        kcm = c.get("/api/v1/namespaces/kube-system/configmaps/kubelet-config")
    except ApiError as exc:
        if exc.code == 401:
            raise RuntimeError("unable to fetch the kubeadm-config ConfigMap: Unauthorized") from None
        raise RuntimeError(f"unable to fetch the kubeadm-config ConfigMap: {exc}") from None
    d.cs = config.cluster_settings(cdoc, paths.VERSION)
    d.kubelet_cfg = yaml.safe_load(kcm["data"]["kubelet"])
    existing = c.get_or_none(f"/api/v1/nodes/{d.node}") if not d.control_plane else None
    if existing:
        ready = any(
            cd.get("type") == "Ready" and cd.get("status") == "True"
            for cd in existing.get("status", {}).get("conditions") or []
        )
        if ready:
            raise RuntimeError(
                f'a Node with name "{d.node}" and status "Ready" already exists in the cluster. You '
                "must delete the existing Node or change the name of this new joining Node"
            )


def download_certs(d: JoinData) -> None:
    say('[download-certs] Downloading the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace')
    try:
        secret = d.token_client().get("/api/v1/namespaces/kube-system/secrets/kubeadm-certs")
    except ApiError as exc:
        raise RuntimeError(
            'error downloading certs: error downloading the secret: Secret "kubeadm-certs" was not '
            'found in the "kube-system" Namespace. This Secret might have expired. Please, run '
            "`kubeadm init phase upload-certs --upload-certs` on a control plane to generate a new "
            f"one ({exc})"
        ) from None
    assert d.cs is not None
    pki = paths.host(d.cs.certificates_dir)
    for f in files.CERT_SECRET_FILES:
        raw = (secret.get("data") or {}).get(f.replace("/", "-"))
        if raw is None:
            continue
        try:
            plain = files.decrypt(base64.b64decode(raw), d.certificate_key)
        except Exception:
            raise RuntimeError(
                "error downloading certs: error decoding secret data with provided key: cipher: message "
                "authentication failed"
            ) from None
        certs.write_private(pki / f, plain, 0o644 if f.endswith((".crt", ".pub")) else 0o600)


def write_bootstrap_kubeconfig(d: JoinData) -> None:
    assert d.cs is not None and d.ca_pem is not None
    pki = paths.host(d.cs.certificates_dir)
    ca_file = pki / "ca.crt"
    if not ca_file.exists():
        certs.write_private(ca_file, d.ca_pem, 0o644)
    kc = certs.kubeconfig(
        d.cluster_server, d.ca_pem, "tls-bootstrap-token-user", token=d.tls_token, cluster=d.cs.cluster_name
    )
    certs.write_kubeconfig(paths.host("/etc/kubernetes/bootstrap-kubelet.conf"), kc)


def phases(d: JoinData) -> list[tuple[str, Any]]:
    def preflight() -> None:
        say("[preflight] Running pre-flight checks")
        ports = [10250] if paths.root() == Path("/") else []
        if d.control_plane and paths.root() == Path("/"):
            ports += [d.port, 10259, 10257, 2379, 2380]
        report(preflight_run("join", d.nr["criSocket"], ports, d.ignore, control_plane=d.control_plane))
        discover(d)
        read_cluster_config(d)
        if d.control_plane:
            assert d.cs is not None
            say("[preflight] Running pre-flight checks before initializing the new control plane instance")
            say("[preflight] Pulling images required for setting up a Kubernetes cluster")
            say("[preflight] This might take a minute or two, depending on the speed of your internet connection")
            say("[preflight] You can also perform this action beforehand using 'kubeadm config images pull'")
            report(pull_images(files.images(d.cs), d.nr.get("imagePullPolicy") or "IfNotPresent", d.ignore))

    def cp_prepare_certs() -> None:
        assert d.cs is not None
        if not d.address:
            from .common import default_address

            d.address = default_address()
        files.write_certs(d.cs, d.node, d.address)

    def cp_prepare_kubeconfig() -> None:
        assert d.cs is not None
        files.write_kubeconfigs(
            d.cs, d.node, d.address, d.port, ["admin.conf", "controller-manager.conf", "scheduler.conf"]
        )

    def cp_prepare_manifests() -> None:
        assert d.cs is not None
        files.write_manifests(d.cs, d.address, d.port, ["kube-apiserver", "kube-controller-manager", "kube-scheduler"])

    def kubelet_start() -> None:
        write_bootstrap_kubeconfig(d)
        files.write_kubelet_files(d.kubelet_cfg, d.nr, register_taints=not d.control_plane, node=d.node)
        start_kubelet()
        wait_kubelet(paths.healthz_port(d.kubelet_cfg), d.timeouts.get("kubeletHealthCheck", "4m0s"))
        say("[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap")
        wait_for(
            "the kubelet to perform the TLS Bootstrap",
            lambda: paths.host("/etc/kubernetes/kubelet.conf").exists(),
            config.parse_duration(d.timeouts.get("tlsBootstrap", "5m0s")),
        )
        paths.host("/etc/kubernetes/bootstrap-kubelet.conf").unlink(missing_ok=True)

    def cp_join_etcd() -> None:
        assert d.cs is not None
        initial: list[tuple[str, str]] | None = None
        etcd: Etcd | None = None
        if etcdmember.enabled():
            admin = Client.from_kubeconfig(paths.host("/etc/kubernetes/admin.conf"), timeout=15)
            etcd = etcdmember.client(d.cs.certificates_dir, etcdmember.cluster_endpoints(admin))
            initial = etcdmember.add_member(etcd, d.node, d.address)
        files.write_manifests(d.cs, d.address, d.port, ["etcd"], node=d.node, etcd_initial_cluster=initial)
        if etcd is not None:
            etcdmember.join_local(etcd, d.cs.certificates_dir, d.address, 120)

    def cp_join_mark() -> None:
        c = Client.from_kubeconfig(paths.host("/etc/kubernetes/admin.conf"), timeout=15)
        wait_for(f'the Node "{d.node}"', lambda: c.get_or_none(f"/api/v1/nodes/{d.node}"), 60)
        cluster.mark_control_plane(c, d.node, d.nr.get("taints") or [])

    out: list[tuple[str, Any]] = [("preflight", preflight)]
    if d.control_plane:
        out += [
            ("control-plane-prepare/download-certs", lambda: download_certs(d)),
            ("control-plane-prepare/certs", cp_prepare_certs),
            ("control-plane-prepare/kubeconfig", cp_prepare_kubeconfig),
            ("control-plane-prepare/control-plane", cp_prepare_manifests),
        ]
    out.append(("kubelet-start", kubelet_start))
    if d.control_plane:
        out += [("control-plane-join/etcd", cp_join_etcd), ("control-plane-join/mark-control-plane", cp_join_mark)]
    return out


def run(args: argparse.Namespace) -> None:
    d = JoinData(args)
    if d.control_plane and not d.certificate_key:
        say("[preflight] certificate key not given: the certificates must already be in place")
    run_phases(phases(d), d.skip, "join")
    say("\nThis node has joined the cluster:")
    if d.control_plane:
        say(
            "* Certificate signing request was sent to apiserver and approval was received.\n"
            "* The Kubelet was informed of the new secure connection details.\n"
            "* Control plane label and taint were applied to the new node.\n"
            "* The Kubernetes control plane instances scaled up.\n\n"
            "To start administering your cluster from this node, you need to run the following as a regular user:\n\n"
            "\tmkdir -p $HOME/.kube\n\tsudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config\n"
            "\tsudo chown $(id -u):$(id -g) $HOME/.kube/config\n\n"
            "Run 'kubectl get nodes' to see this node join the cluster.\n"
        )
    else:
        say(
            "* Certificate signing request was sent to apiserver and a response was received.\n"
            "* The Kubelet was informed of the new secure connection details.\n\n"
            "Run 'kubectl get nodes' on the control-plane to see this node join the cluster.\n"
        )

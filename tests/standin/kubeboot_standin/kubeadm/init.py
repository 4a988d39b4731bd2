"""kubeadm init and its phases."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .. import certs, config, paths, tokens
from ..client import Client
from . import cluster, files
from .common import config_warnings, default_address, run_phases, start_kubelet, wait_api, wait_for, wait_kubelet
from .files import say
from .preflight import pull_images, report, validate_ignore
from .preflight import run as preflight_run

INIT_PHASES = [
    "preflight",
    "certs",
    "kubeconfig",
    "etcd",
    "control-plane",
    "kubelet-start",
    "wait-control-plane",
    "upload-config",
    "upload-certs",
    "mark-control-plane",
    "bootstrap-token",
    "kubelet-finalize",
    "addon",
    "show-join-command",
]


class InitData:
    def __init__(self, args: argparse.Namespace) -> None:
        text = Path(args.config).read_text() if args.config else ""
        docs = config.split_documents(text, strict=False) if text else config.Documents()
        config_warnings(docs.warnings)
        init = docs.docs.get("InitConfiguration", {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "InitConfiguration"})
        cdoc = docs.docs.get("ClusterConfiguration")
        if args.config and "InitConfiguration" not in docs.docs and cdoc is None:
            raise config.ConfigError(
                "no InitConfiguration or ClusterConfiguration kind was found in the configuration file"
            )
        if cdoc is None:
            cdoc = {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration"}
            if args.pod_network_cidr:
                cdoc["networking"] = {"podSubnet": args.pod_network_cidr}
            if args.service_cidr:
                cdoc.setdefault("networking", {})["serviceSubnet"] = args.service_cidr
            if args.control_plane_endpoint:
                cdoc["controlPlaneEndpoint"] = args.control_plane_endpoint
            if args.kubernetes_version:
                cdoc["kubernetesVersion"] = args.kubernetes_version
            if args.apiserver_cert_extra_sans:
                cdoc["apiServer"] = {"certSANs": args.apiserver_cert_extra_sans.split(",")}
            if args.image_repository:
                cdoc["imageRepository"] = args.image_repository
        self.cs = config.cluster_settings(cdoc, paths.VERSION)
        self.init = init
        nr = dict(init.get("nodeRegistration") or {})
        if args.node_name:
            nr["name"] = args.node_name
        if args.cri_socket:
            nr["criSocket"] = args.cri_socket
        nr.setdefault("criSocket", config.DEFAULT_CRI)
        if "taints" not in nr:
            nr["taints"] = [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
        config.validate_node_registration(nr, "nodeRegistration")
        self.nr = nr
        self.node = nr.get("name") or files.node_default_name()
        ep = init.get("localAPIEndpoint") or {}
        self.address = args.apiserver_advertise_address or ep.get("advertiseAddress") or default_address()
        self.port = int(args.apiserver_bind_port or ep.get("bindPort") or 6443)
        self.kubelet_cfg = files.kubelet_config(self.cs, docs.component.get("KubeletConfiguration"))
        self.timeouts = {k: v for k, v in (init.get("timeouts") or {}).items()}
        self.ignore = validate_ignore(args.ignore_preflight_errors, nr.get("ignorePreflightErrors") or [])
        self.skip = [*init.get("skipPhases", []), *args.skip_phases]
        bts = init.get("bootstrapTokens") or [{}]
        if args.token:
            bts = [{**bts[0], "token": args.token}]
        if args.token_ttl:
            bts = [{**bts[0], "ttl": args.token_ttl}]
        for i, bt in enumerate(bts):
            if bt.get("token"):
                config.validate_token(bt["token"], f"bootstrapTokens[{i}].token")
        self.bootstrap_tokens = [
            {"token": bt.get("token") or tokens.generate(), **{k: v for k, v in bt.items() if k != "token"}}
            for bt in bts
        ]
        self.upload_certs = bool(args.upload_certs)
        self.certificate_key = args.certificate_key or init.get("certificateKey") or ""
        self.skip_token_print = bool(getattr(args, "skip_token_print", False))
        self.skip_certificate_key_print = bool(getattr(args, "skip_certificate_key_print", False))

    @property
    def server(self) -> str:
        return files.server_url(self.cs, self.address, self.port)

    def client(self, conf: str = "super-admin.conf") -> Client:
        return Client.from_kubeconfig(paths.host(f"{paths.ETC_K8S}/{conf}"), timeout=15)


def _print_join(d: InitData) -> None:
    pki = paths.host(d.cs.certificates_dir)
    ca_hash = certs.ca_cert_hash(certs.load_cert(pki / "ca.crt"))
    ep = d.server.removeprefix("https://")
    token = d.bootstrap_tokens[0]["token"]
    say("\nYour Kubernetes control-plane has initialized successfully!\n")
    say("To start using your cluster, you need to run the following as a regular user:\n")
    say(
        "  mkdir -p $HOME/.kube\n  sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config\n"
        "  sudo chown $(id -u):$(id -g) $HOME/.kube/config\n"
    )
    say("Alternatively, if you are the root user, you can run:\n\n  export KUBECONFIG=/etc/kubernetes/admin.conf\n")
    say(
        "You should now deploy a pod network to the cluster.\n"
        'Run "kubectl apply -f [podnetwork].yaml" with one of the options listed at:\n'
        "  https://kubernetes.io/docs/concepts/cluster-administration/addons/\n"
    )
    shown_token = "<value withheld>" if d.skip_token_print else token
    if d.cs.control_plane_endpoint:
        key = d.certificate_key if d.upload_certs and not d.skip_certificate_key_print else "<value withheld>"
        say("You can now join any number of control-plane nodes running the following command on each as root:\n")
        say(
            f"  kubeadm join {ep} --token {shown_token} \\\n\t--discovery-token-ca-cert-hash {ca_hash} \\\n"
            f"\t--control-plane --certificate-key {key}\n"
        )
        if d.upload_certs:
            say(
                "Please note that the certificate-key gives access to cluster sensitive data, keep it secret!\n"
                "As a safeguard, uploaded-certs will be deleted in two hours; If necessary, you can use\n"
                '"kubeadm init phase upload-certs --upload-certs" to reload certs afterward.\n'
            )
    say("Then you can join any number of worker nodes by running the following on each as root:\n")
    say(f"kubeadm join {ep} --token {shown_token} \\\n\t--discovery-token-ca-cert-hash {ca_hash} ")


def phases(d: InitData) -> list[tuple[str, Any]]:
    def preflight() -> None:
        say("[preflight] Running pre-flight checks")
        # Under a test root only the API server's own port is checked (the others belong to the host).
        ports = [d.port, 10259, 10257, 10250, 2379, 2380] if paths.root() == Path("/") else [d.port]
        report(preflight_run("init", d.nr["criSocket"], ports, d.ignore, control_plane=True))
        say("[preflight] Pulling images required for setting up a Kubernetes cluster")
        say("[preflight] This might take a minute or two, depending on the speed of your internet connection")
        say("[preflight] You can also perform this action beforehand using 'kubeadm config images pull'")
        report(pull_images(files.images(d.cs), d.nr.get("imagePullPolicy") or "IfNotPresent", d.ignore))

    def kubeconfigs() -> None:
        files.write_kubeconfigs(
            d.cs,
            d.node,
            d.address,
            d.port,
            ["admin.conf", "super-admin.conf", "kubelet.conf", "controller-manager.conf", "scheduler.conf"],
        )

    def kubelet_start() -> None:
        files.write_kubelet_files(d.kubelet_cfg, d.nr, register_taints=False, node=d.node)
        start_kubelet()

    def wait_cp() -> None:
        say(
            "[wait-control-plane] Waiting for the kubelet to boot up the control plane as static Pods from directory "
            f'"{paths.MANIFESTS}"'
        )
        wait_kubelet(paths.healthz_port(d.kubelet_cfg), d.timeouts.get("kubeletHealthCheck", "4m0s"))
        say(
            f"[control-plane-check] Waiting for healthy control plane components. This can take up to "
            f"{d.timeouts.get('controlPlaneComponentHealthCheck', '4m0s')}"
        )
        wait_api(
            d.client(), f"https://{d.address}:{d.port}", d.timeouts.get("controlPlaneComponentHealthCheck", "4m0s")
        )
        cluster.ensure_cluster_admins(d.client())

    def upload_config() -> None:
        cluster.upload_config(d.client("admin.conf"), d.cs, d.kubelet_cfg)

    def upload_certs() -> None:
        if not d.upload_certs:
            say("[upload-certs] Skipping phase. Please see --upload-certs")
            return
        if not d.certificate_key:
            d.certificate_key = files.certificate_key()
        cluster.upload_certs(d.client("admin.conf"), d.cs, d.certificate_key)

    def mark() -> None:
        c = d.client("admin.conf")
        wait_for(f'the Node "{d.node}"', lambda: c.get_or_none(f"/api/v1/nodes/{d.node}"), 60)
        cluster.mark_control_plane(c, d.node, d.nr.get("taints") or [])

    def bootstrap_token() -> None:
        c = d.client("admin.conf")
        say(f"[bootstrap-token] Using token: {d.bootstrap_tokens[0]['token']}")
        say("[bootstrap-token] Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles")
        for bt in d.bootstrap_tokens:
            cluster.create_token(
                c, bt["token"], bt.get("ttl", "24h0m0s"), bt.get("description", ""), bt.get("usages"), bt.get("groups")
            )
        cluster.bootstrap_rbac(c, d.cs, d.server)

    def finalize() -> None:
        kc = paths.host(f"{paths.ETC_K8S}/kubelet.conf")
        cur = certs.read_kubeconfig(kc)
        if "cert_pem" not in cur:
            return
        say(
            '[kubelet-finalize] Updating "/etc/kubernetes/kubelet.conf" to point to a rotatable kubelet client '
            "certificate and key"
        )
        pem = paths.host(f"{paths.KUBELET_DIR}/pki/kubelet-client-current.pem")
        certs.write_private(pem, cur["cert_pem"] + cur["key_pem"])
        user = f"system:node:{d.node}"
        certs.write_kubeconfig(
            kc,
            certs.kubeconfig(
                cur["server"],
                cur["ca_pem"],
                user,
                cert_file="/var/lib/kubelet/pki/kubelet-client-current.pem",
                key_file="/var/lib/kubelet/pki/kubelet-client-current.pem",
                cluster=d.cs.cluster_name,
            ),
        )

    def addon() -> None:
        cluster.addons(d.client("admin.conf"), d.cs, d.server)

    return [
        ("preflight", preflight),
        ("certs", lambda: files.write_certs(d.cs, d.node, d.address)),
        ("kubeconfig", kubeconfigs),
        ("etcd/local", lambda: files.write_manifests(d.cs, d.address, d.port, ["etcd"], node=d.node)),
        (
            "control-plane",
            lambda: files.write_manifests(
                d.cs, d.address, d.port, ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]
            ),
        ),
        ("kubelet-start", kubelet_start),
        ("wait-control-plane", wait_cp),
        ("upload-config", upload_config),
        ("upload-certs", upload_certs),
        ("mark-control-plane", mark),
        ("bootstrap-token", bootstrap_token),
        ("kubelet-finalize", finalize),
        ("addon", addon),
        ("show-join-command", lambda: _print_join(d)),
    ]


def run(args: argparse.Namespace, only: str | None = None) -> None:
    d = InitData(args)
    if only is None:
        say(f"[init] Using Kubernetes version: {d.cs.kubernetes_version}")
    if only == "upload-certs" and not d.upload_certs:
        say("[upload-certs] Skipping phase. Please see --upload-certs")
        return
    run_phases(phases(d), d.skip, "init", only)

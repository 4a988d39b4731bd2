"""Files kubeadm writes: PKI, kubeconfigs, static pod manifests, kubelet config and flags."""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .. import certs, paths
from ..config import ClusterSettings, args_dict

# kubeadm 1.33 constants: CoreDNSVersion, PauseVersion, SupportedEtcdVersion[33], DefaultImageRepository.
COREDNS_VERSION = "v1.12.0"
PAUSE_VERSION = "3.10"
ETCD_VERSION = "3.5.21-0"
DEFAULT_REPOSITORY = "registry.k8s.io"
CERT_SECRET_FILES = [
    "ca.crt",
    "ca.key",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "etcd/ca.crt",
    "etcd/ca.key",
    "sa.key",
    "sa.pub",
]


def say(msg: str) -> None:
    print(msg, flush=True)


def images(cs: ClusterSettings) -> list[str]:
    """kubeadm 1.33's GetControlPlaneImages: the core images, kube-proxy and CoreDNS unless disabled, pause, and
    etcd unless external; CoreDNS sits under coredns/ only in the default registry (as kubeadm's GetDNSImage)."""
    raw = cs.raw
    repo = cs.image_repository
    tag = cs.kubernetes_version.replace("+", "_")
    out = [f"{repo}/kube-{c}:{tag}" for c in ("apiserver", "controller-manager", "scheduler")]
    if not (raw.get("proxy") or {}).get("disabled"):
        out.append(f"{repo}/kube-proxy:{tag}")
    if not (raw.get("dns") or {}).get("disabled"):
        out.append(dns_image(cs))
    out.append(f"{repo}/pause:{PAUSE_VERSION}")
    if not (raw.get("etcd") or {}).get("external"):
        out.append(etcd_image(cs))
    return out


def dns_image(cs: ClusterSettings) -> str:
    dns = cs.raw.get("dns") or {}
    dns_repo = dns.get("imageRepository") or cs.image_repository
    if dns_repo == DEFAULT_REPOSITORY:
        dns_repo = f"{dns_repo}/coredns"
    return f"{dns_repo}/coredns:{dns.get('imageTag') or COREDNS_VERSION}"


def etcd_image(cs: ClusterSettings) -> str:
    local = (cs.raw.get("etcd") or {}).get("local") or {}
    return f"{local.get('imageRepository') or cs.image_repository}/etcd:{local.get('imageTag') or ETCD_VERSION}"


def service_ip(cs: ClusterSettings, n: int) -> str:
    net = ipaddress.ip_network(cs.service_subnet.split(",")[0], strict=False)
    return str(net.network_address + n)


def _has(pki: Path, name: str) -> bool:
    return (pki / f"{name}.crt").exists() and (pki / f"{name}.key").exists()


def write_certs(cs: ClusterSettings, node: str, address: str) -> None:
    pki = paths.host(cs.certificates_dir)
    say(f'[certs] Using certificateDir folder "{cs.certificates_dir}"')

    def ca(name: str, cn: str) -> certs.KeyPair:
        if _has(pki, name):
            say(f"[certs] Using existing {name} certificate authority")
            return certs.load_pair(pki, name)
        say(f'[certs] Generating "{name}" certificate and key')
        pair = certs.new_ca(cn, validity=cs.ca_validity)
        certs.write_pair(pki, name, pair)
        return pair

    def leaf(name: str, issuer: certs.KeyPair, cn: str, orgs: list[str] | None = None, **kw: Any) -> None:
        if _has(pki, name):
            say(f"[certs] Using existing {name} certificate and key on disk")
            return
        say(f'[certs] Generating "{name}" certificate and key')
        certs.write_pair(pki, name, certs.issue(issuer, cn, orgs, validity=cs.cert_validity, **kw))

    root_ca = ca("ca", "kubernetes")
    dns = [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        f"kubernetes.default.svc.{cs.dns_domain}",
        node,
    ]
    ips = [service_ip(cs, 1), address]
    endpoint_host = cs.control_plane_endpoint.rsplit(":", 1)[0] if cs.control_plane_endpoint else ""
    for san in [*cs.cert_sans, endpoint_host]:
        if not san:
            continue
        try:
            ipaddress.ip_address(san)
            ips.append(san)
        except ValueError:
            dns.append(san)
    say(f"[certs] apiserver serving cert is signed for DNS names [{' '.join(dns)}] and IPs [{' '.join(ips)}]")
    leaf("apiserver", root_ca, "kube-apiserver", server=True, dns=dns, ips=list(dict.fromkeys(ips)))
    leaf("apiserver-kubelet-client", root_ca, "kube-apiserver-kubelet-client", ["kubeadm:cluster-admins"], client=True)
    fp = ca("front-proxy-ca", "front-proxy-ca")
    leaf("front-proxy-client", fp, "front-proxy-client", client=True)
    etcd_ca = ca("etcd/ca", "etcd-ca")
    leaf("etcd/server", etcd_ca, node, server=True, client=True, dns=[node, "localhost"], ips=[address, "127.0.0.1"])
    leaf("etcd/peer", etcd_ca, node, server=True, client=True, dns=[node, "localhost"], ips=[address, "127.0.0.1"])
    leaf("etcd/healthcheck-client", etcd_ca, "kube-etcd-healthcheck-client", client=True)
    leaf("apiserver-etcd-client", etcd_ca, "kube-apiserver-etcd-client", client=True)
    if not (pki / "sa.key").exists():
        say('[certs] Generating "sa" key and public key')
        key = certs.new_key()
        certs.write_private(pki / "sa.key", certs.key_pem(key))
        certs.write_private(
            pki / "sa.pub",
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
            0o644,
        )


def server_url(cs: ClusterSettings, address: str, port: int) -> str:
    if cs.control_plane_endpoint:
        ep = cs.control_plane_endpoint
        return f"https://{ep}" if ":" in ep.split("]")[-1] else f"https://{ep}:{port}"
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}:{port}"


def write_kubeconfigs(cs: ClusterSettings, node: str, address: str, port: int, names: list[str]) -> None:
    pki = paths.host(cs.certificates_dir)
    ca = certs.load_pair(pki, "ca")
    say('[kubeconfig] Using kubeconfig folder "/etc/kubernetes"')
    local = f"https://{address}:{port}"
    specs = {
        "admin.conf": ("kubernetes-admin", ["kubeadm:cluster-admins"], server_url(cs, address, port)),
        "super-admin.conf": ("kubernetes-super-admin", ["system:masters"], server_url(cs, address, port)),
        "kubelet.conf": (f"system:node:{node}", ["system:nodes"], server_url(cs, address, port)),
        "controller-manager.conf": ("system:kube-controller-manager", [], local),
        "scheduler.conf": ("system:kube-scheduler", [], local),
    }
    for name in names:
        path = paths.host(f"{paths.ETC_K8S}/{name}")
        if path.exists():
            say(f'[kubeconfig] Using existing kubeconfig file: "/etc/kubernetes/{name}"')
            continue
        user, orgs, server = specs[name]
        say(f'[kubeconfig] Writing "{name}" kubeconfig file')
        pair = certs.issue(ca, user, orgs, client=True, validity=cs.cert_validity)
        certs.write_kubeconfig(
            path,
            certs.kubeconfig(
                server, ca.cert_pem(), user, cert_pem=pair.cert_pem(), key_pem_=pair.key_pem(), cluster=cs.cluster_name
            ),
        )


def _pod(
    name: str,
    image: str,
    command: list[str],
    port: int,
    probe_path: str,
    scheme: str = "HTTPS",
    host: str = "127.0.0.1",
    volumes: list[tuple[str, str, bool]] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    vols = volumes or []
    probe = {
        "httpGet": {"host": host, "path": probe_path, "port": port, "scheme": scheme},
        "initialDelaySeconds": 10,
        "periodSeconds": 10,
        "timeoutSeconds": 15,
        "failureThreshold": 8,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "annotations": annotations or {},
            "labels": {"component": name, "tier": "control-plane"},
            "name": name,
            "namespace": "kube-system",
        },
        "spec": {
            "containers": [
                {
                    "command": command,
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "name": name,
                    "livenessProbe": probe,
                    "startupProbe": {**probe, "failureThreshold": 24},
                    "resources": {"requests": {"cpu": "250m"}},
                    "volumeMounts": [{"mountPath": m, "name": n, "readOnly": ro} for n, m, ro in vols],
                }
            ],
            "hostNetwork": True,
            "priority": 2000001000,
            "priorityClassName": "system-node-critical",
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"hostPath": {"path": m, "type": "DirectoryOrCreate"}, "name": n} for n, m, _ in vols],
        },
        "status": {},
    }


def _flags(base: dict[str, str], extra: list[dict[str, str]] | None) -> list[str]:
    merged = {**base, **args_dict(extra)}
    return [f"--{k}={v}" for k, v in sorted(merged.items())]


def write_manifests(
    cs: ClusterSettings,
    address: str,
    port: int,
    components: list[str],
    node: str = "",
    etcd_initial_cluster: list[tuple[str, str]] | None = None,
) -> None:
    """The static pod manifests; etcd's names the node (its member name) and, on a joining control plane, the
    cluster it joins (the members `member add` returned, this one included) with --initial-cluster-state=existing."""
    raw = cs.raw
    repo, v, pki = cs.image_repository, cs.kubernetes_version, cs.certificates_dir
    man = paths.host(paths.MANIFESTS)
    man.mkdir(parents=True, exist_ok=True)
    say(f'[control-plane] Using manifest folder "{paths.MANIFESTS}"')
    k8s_vols = [("ca-certs", "/etc/ssl/certs", True), ("k8s-certs", pki, True)]
    pods: dict[str, dict[str, Any]] = {}
    apiserver = {
        "advertise-address": address,
        "allow-privileged": "true",
        "authorization-mode": "Node,RBAC",
        "client-ca-file": f"{pki}/ca.crt",
        "enable-admission-plugins": "NodeRestriction",
        "enable-bootstrap-token-auth": "true",
        "etcd-cafile": f"{pki}/etcd/ca.crt",
        "etcd-certfile": f"{pki}/apiserver-etcd-client.crt",
        "etcd-keyfile": f"{pki}/apiserver-etcd-client.key",
        "etcd-servers": "https://127.0.0.1:2379",
        "kubelet-client-certificate": f"{pki}/apiserver-kubelet-client.crt",
        "kubelet-client-key": f"{pki}/apiserver-kubelet-client.key",
        "kubelet-preferred-address-types": "InternalIP,ExternalIP,Hostname",
        "proxy-client-cert-file": f"{pki}/front-proxy-client.crt",
        "proxy-client-key-file": f"{pki}/front-proxy-client.key",
        "requestheader-allowed-names": "front-proxy-client",
        "requestheader-client-ca-file": f"{pki}/front-proxy-ca.crt",
        "requestheader-extra-headers-prefix": "X-Remote-Extra-",
        "requestheader-group-headers": "X-Remote-Group",
        "requestheader-username-headers": "X-Remote-User",
        "secure-port": str(port),
        "service-account-issuer": f"https://kubernetes.default.svc.{cs.dns_domain}",
        "service-account-key-file": f"{pki}/sa.pub",
        "service-account-signing-key-file": f"{pki}/sa.key",
        "service-cluster-ip-range": cs.service_subnet,
        "tls-cert-file": f"{pki}/apiserver.crt",
        "tls-private-key-file": f"{pki}/apiserver.key",
    }
    pods["kube-apiserver"] = _pod(
        "kube-apiserver",
        f"{repo}/kube-apiserver:{v}",
        ["kube-apiserver", *_flags(apiserver, raw.get("apiServer", {}).get("extraArgs"))],
        port,
        "/livez",
        host=address,
        volumes=k8s_vols,
        annotations={"kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": f"{address}:{port}"},
    )
    cm = {
        "authentication-kubeconfig": "/etc/kubernetes/controller-manager.conf",
        "authorization-kubeconfig": "/etc/kubernetes/controller-manager.conf",
        "bind-address": "127.0.0.1",
        "client-ca-file": f"{pki}/ca.crt",
        "cluster-name": cs.cluster_name,
        "cluster-signing-cert-file": f"{pki}/ca.crt",
        "cluster-signing-key-file": f"{pki}/ca.key",
        "controllers": "*,bootstrapsigner,tokencleaner",
        "kubeconfig": "/etc/kubernetes/controller-manager.conf",
        "leader-elect": "true",
        "requestheader-client-ca-file": f"{pki}/front-proxy-ca.crt",
        "root-ca-file": f"{pki}/ca.crt",
        "service-account-private-key-file": f"{pki}/sa.key",
        "use-service-account-credentials": "true",
    }
    if cs.pod_subnet:
        cm.update({"allocate-node-cidrs": "true", "cluster-cidr": cs.pod_subnet})
    cm["service-cluster-ip-range"] = cs.service_subnet
    pods["kube-controller-manager"] = _pod(
        "kube-controller-manager",
        f"{repo}/kube-controller-manager:{v}",
        ["kube-controller-manager", *_flags(cm, raw.get("controllerManager", {}).get("extraArgs"))],
        10257,
        "/healthz",
        volumes=k8s_vols,
    )
    sched = {
        "authentication-kubeconfig": "/etc/kubernetes/scheduler.conf",
        "authorization-kubeconfig": "/etc/kubernetes/scheduler.conf",
        "bind-address": "127.0.0.1",
        "kubeconfig": "/etc/kubernetes/scheduler.conf",
        "leader-elect": "true",
    }
    pods["kube-scheduler"] = _pod(
        "kube-scheduler",
        f"{repo}/kube-scheduler:{v}",
        ["kube-scheduler", *_flags(sched, raw.get("scheduler", {}).get("extraArgs"))],
        10259,
        "/livez",
    )
    etcd = {
        "advertise-client-urls": f"https://{address}:2379",
        "cert-file": f"{pki}/etcd/server.crt",
        "client-cert-auth": "true",
        "data-dir": paths.ETCD_DIR,
        "initial-advertise-peer-urls": f"https://{address}:2380",
        "experimental-initial-corrupt-check": "true",
        "experimental-watch-progress-notify-interval": "5s",
        "initial-cluster": ",".join(
            f"{n}={u}" for n, u in (etcd_initial_cluster or [(node or address, f"https://{address}:2380")])
        ),
        "key-file": f"{pki}/etcd/server.key",
        "listen-client-urls": f"https://127.0.0.1:2379,https://{address}:2379",
        "listen-metrics-urls": "http://127.0.0.1:2381",
        "listen-peer-urls": f"https://{address}:2380",
        "name": node or address,
        "peer-cert-file": f"{pki}/etcd/peer.crt",
        "peer-client-cert-auth": "true",
        "peer-key-file": f"{pki}/etcd/peer.key",
        "peer-trusted-ca-file": f"{pki}/etcd/ca.crt",
        "snapshot-count": "10000",
        "trusted-ca-file": f"{pki}/etcd/ca.crt",
    }
    if etcd_initial_cluster:
        etcd["initial-cluster-state"] = "existing"
    pods["etcd"] = _pod(
        "etcd",
        etcd_image(cs),
        ["etcd", *_flags(etcd, raw.get("etcd", {}).get("local", {}).get("extraArgs"))],
        2381,
        "/livez",
        scheme="HTTP",
        volumes=[("etcd-data", paths.ETCD_DIR, False), ("etcd-certs", f"{pki}/etcd", False)],
        annotations={"kubeadm.kubernetes.io/etcd.advertise-client-urls": f"https://{address}:2379"},
    )
    for c in components:
        if c == "etcd":
            say(f'[etcd] Creating static Pod manifest for local etcd in "{paths.MANIFESTS}"')
        else:
            say(f'[control-plane] Creating static Pod manifest for "{c}"')
        (man / f"{c}.yaml").write_text(yaml.safe_dump(pods[c], sort_keys=False))
        os.chmod(man / f"{c}.yaml", 0o600)


def kubelet_config(cs: ClusterSettings, user_doc: dict[str, Any] | None) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"cacheTTL": "0s", "enabled": True},
            "x509": {"clientCAFile": f"{cs.certificates_dir}/ca.crt"},
        },
        "authorization": {"mode": "Webhook", "webhook": {"cacheAuthorizedTTL": "0s", "cacheUnauthorizedTTL": "0s"}},
        "cgroupDriver": "systemd",
        "clusterDNS": [service_ip(cs, 10)],
        "clusterDomain": cs.dns_domain,
        "containerRuntimeEndpoint": "",
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "rotateCertificates": True,
        "staticPodPath": paths.MANIFESTS,
    }
    for k, v in (user_doc or {}).items():
        cfg[k] = v
    return cfg


def write_kubelet_files(kubelet_cfg: dict[str, Any], nr: dict[str, Any], register_taints: bool, node: str) -> None:
    flags = {"container-runtime-endpoint": nr.get("criSocket") or "unix:///var/run/containerd/containerd.sock"}
    if nr.get("name") and nr["name"] != node_default_name():
        flags["hostname-override"] = nr["name"]
    if register_taints and nr.get("taints"):
        flags["register-with-taints"] = ",".join(
            f"{t['key']}={t.get('value', '')}:{t['effect']}" if t.get("value") else f"{t['key']}:{t['effect']}"
            for t in nr["taints"]
        )
    flags.update(args_dict(nr.get("kubeletExtraArgs")))
    line = " ".join(f"--{k}={v}" for k, v in flags.items())
    env = paths.host(paths.KUBEADM_FLAGS)
    env.parent.mkdir(parents=True, exist_ok=True)
    say(f'[kubelet-start] Writing kubelet environment file with flags to file "{paths.KUBEADM_FLAGS}"')
    env.write_text(f'KUBELET_KUBEADM_ARGS="{line}"\n')
    say(f'[kubelet-start] Writing kubelet configuration to file "{paths.KUBELET_CONFIG}"')
    paths.host(paths.KUBELET_CONFIG).write_text(yaml.safe_dump(kubelet_cfg, sort_keys=True))
    _ = node


def node_default_name() -> str:
    import socket

    return socket.gethostname().lower()


def certificate_key() -> str:
    return secrets.token_hex(32)


def encrypt(data: bytes, key_hex: str) -> bytes:
    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(bytes.fromhex(key_hex)).encrypt(nonce, data, None)


def decrypt(data: bytes, key_hex: str) -> bytes:
    return AESGCM(bytes.fromhex(key_hex)).decrypt(data[:12], data[12:], None)

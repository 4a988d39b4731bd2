"""kubeadm's API-side work: uploaded config, RBAC for bootstrap, cluster-info, tokens, certs, marking, addons."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import yaml

from .. import certs, paths, tokens
from ..client import ApiError, Client
from ..config import ClusterSettings
from .files import CERT_SECRET_FILES, encrypt, say

RBAC = "/apis/rbac.authorization.k8s.io/v1"
KS = "/api/v1/namespaces/kube-system"


def _crb(name: str, role: str, subjects: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    }


def _group(name: str) -> dict[str, str]:
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": name}


def ensure_cluster_admins(c: Client) -> None:
    """The kubeadm:cluster-admins binding that admin.conf relies on (created with super-admin.conf)."""
    c.apply(
        f"{RBAC}/clusterrolebindings",
        _crb("kubeadm:cluster-admins", "cluster-admin", [_group("kubeadm:cluster-admins")]),
    )


def fetch_cluster_configuration(c: Client, prefix: str, printer: Callable[[str], None] = say) -> dict[str, Any]:
    """The ClusterConfiguration of the kubeadm-config ConfigMap, as kubeadm's FetchInitConfigurationFromCluster
    announces it under the command's prefix ([preflight], [check-expiration], [renew]...) through its printer
    (silent for structured output)."""
    printer(f'[{prefix}] Reading configuration from the "kubeadm-config" ConfigMap in namespace "kube-system"...')
    printer(f"[{prefix}] Use 'kubeadm init phase upload-config kubeadm --config your-config-file' to re-upload it.")
    cm = c.get(f"{KS}/configmaps/kubeadm-config")
    return yaml.safe_load(cm["data"]["ClusterConfiguration"]) or {}


def upload_config(c: Client, cs: ClusterSettings, kubelet_cfg: dict[str, Any]) -> None:
    say('[upload-config] Storing the configuration used in ConfigMap "kubeadm-config" in the "kube-system" Namespace')
    cluster_doc = dict(cs.raw)
    cluster_doc.setdefault("apiVersion", "kubeadm.k8s.io/v1beta4")
    cluster_doc["kind"] = "ClusterConfiguration"
    cluster_doc["kubernetesVersion"] = cs.kubernetes_version
    cluster_doc.setdefault("networking", {}).update(
        {
            "dnsDomain": cs.dns_domain,
            "serviceSubnet": cs.service_subnet,
            **({"podSubnet": cs.pod_subnet} if cs.pod_subnet else {}),
        }
    )
    cluster_doc.setdefault("certificatesDir", cs.certificates_dir)
    cluster_doc.setdefault("clusterName", cs.cluster_name)
    cluster_doc.setdefault("imageRepository", cs.image_repository)
    c.apply(
        f"{KS}/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
            "data": {"ClusterConfiguration": yaml.safe_dump(cluster_doc, sort_keys=True)},
        },
    )
    say(
        '[kubelet] Creating a ConfigMap "kubelet-config" in namespace kube-system with the configuration for the '
        "kubelets in the cluster"
    )
    c.apply(
        f"{KS}/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "kubelet-config", "namespace": "kube-system"},
            "data": {"kubelet": yaml.safe_dump(kubelet_cfg, sort_keys=True)},
        },
    )
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "kubeadm:nodes-kubeadm-config", "namespace": "kube-system"},
        "rules": [
            {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["kubeadm-config"], "verbs": ["get"]}
        ],
    }
    c.apply(f"{RBAC}/namespaces/kube-system/roles", role)
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "kubeadm:nodes-kubeadm-config", "namespace": "kube-system"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kubeadm:nodes-kubeadm-config"},
        "subjects": [_group("system:bootstrappers:kubeadm:default-node-token"), _group("system:nodes")],
    }
    c.apply(f"{RBAC}/namespaces/kube-system/rolebindings", binding)
    role2 = {
        **role,
        "metadata": {"name": "kubeadm:kubelet-config", "namespace": "kube-system"},
        "rules": [
            {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["kubelet-config"], "verbs": ["get"]}
        ],
    }
    c.apply(f"{RBAC}/namespaces/kube-system/roles", role2)
    c.apply(
        f"{RBAC}/namespaces/kube-system/rolebindings",
        {
            **binding,
            "metadata": {"name": "kubeadm:kubelet-config", "namespace": "kube-system"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kubeadm:kubelet-config"},
        },
    )


def upload_certs(c: Client, cs: ClusterSettings, key: str) -> None:
    say('[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace')
    pki = paths.host(cs.certificates_dir)
    data = {}
    for f in CERT_SECRET_FILES:
        p = pki / f
        if p.exists():
            data[f.replace("/", "-")] = base64.b64encode(encrypt(p.read_bytes(), key)).decode()
    token = tokens.generate()
    tsecret = tokens.secret(
        token, ttl="2h0m0s", description="Proxy for managing TTL for the kubeadm-certs secret", usages=[], groups=[]
    )
    created = c.apply(f"{KS}/secrets", tsecret)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": "kubeadm-certs",
            "namespace": "kube-system",
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "name": created["metadata"]["name"],
                    "uid": created["metadata"]["uid"],
                    "blockOwnerDeletion": True,
                    "controller": True,
                }
            ],
        },
        "data": data,
    }
    c.apply(f"{KS}/secrets", secret)
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "kubeadm:kubeadm-certs", "namespace": "kube-system"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["kubeadm-certs"], "verbs": ["get"]}],
    }
    c.apply(f"{RBAC}/namespaces/kube-system/roles", role)
    c.apply(
        f"{RBAC}/namespaces/kube-system/rolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "kubeadm:kubeadm-certs", "namespace": "kube-system"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kubeadm:kubeadm-certs"},
            "subjects": [_group("system:bootstrappers:kubeadm:default-node-token")],
        },
    )
    say("[upload-certs] Using certificate key:")
    say(key)


def mark_control_plane(c: Client, node: str, taints: list[dict[str, str]]) -> None:
    labels = ["node-role.kubernetes.io/control-plane", "node.kubernetes.io/exclude-from-external-load-balancers"]
    say(f"[mark-control-plane] Marking the node {node} as control-plane by adding the labels: [{' '.join(labels)}]")
    if taints:
        shown = " ".join(f"{t['key']}:{t['effect']}" for t in taints)
        say(f"[mark-control-plane] Marking the node {node} as control-plane by adding the taints [{shown}]")
    cur = c.get(f"/api/v1/nodes/{node}")
    existing = cur.get("spec", {}).get("taints") or []
    merged = existing + [
        t for t in taints if not any(e.get("key") == t["key"] and e.get("effect") == t["effect"] for e in existing)
    ]
    c.patch(f"/api/v1/nodes/{node}", {"metadata": {"labels": dict.fromkeys(labels, "")}, "spec": {"taints": merged}})


def create_token(
    c: Client,
    token: str,
    ttl: str,
    description: str = "",
    usages: list[str] | None = None,
    groups: list[str] | None = None,
) -> None:
    try:
        c.create(f"{KS}/secrets", tokens.secret(token, ttl, description, usages, groups))
    except ApiError as exc:
        if exc.code == 409:
            tid = token.split(".", maxsplit=1)[0]
            raise RuntimeError(f'a token with id "{tid}" already exists') from None
        raise


def bootstrap_rbac(c: Client, cs: ClusterSettings, server: str) -> None:
    say("[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to get nodes")
    c.apply(
        f"{RBAC}/clusterroles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "kubeadm:get-nodes"},
            "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}],
        },
    )
    c.apply(
        f"{RBAC}/clusterrolebindings",
        _crb("kubeadm:get-nodes", "kubeadm:get-nodes", [_group("system:bootstrappers:kubeadm:default-node-token")]),
    )
    say(
        "[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to post CSRs in order for nodes to get "
        "long term certificate credentials"
    )
    c.apply(
        f"{RBAC}/clusterrolebindings",
        _crb(
            "kubeadm:kubelet-bootstrap",
            "system:node-bootstrapper",
            [_group("system:bootstrappers:kubeadm:default-node-token")],
        ),
    )
    say(
        "[bootstrap-token] Configured RBAC rules to allow the csrapprover controller automatically approve CSRs from a "
        "Node Bootstrap Token"
    )
    c.apply(
        f"{RBAC}/clusterrolebindings",
        _crb(
            "kubeadm:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            [_group("system:bootstrappers:kubeadm:default-node-token")],
        ),
    )
    say('[bootstrap-token] Creating the "cluster-info" ConfigMap in the "kube-public" namespace')
    ca_pem = paths.host(f"{cs.certificates_dir}/ca.crt").read_bytes()
    kc = certs.kubeconfig(server, ca_pem, "", cluster="")
    kc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "", "cluster": kc["clusters"][0]["cluster"]}],
        "contexts": None,
        "current-context": "",
        "preferences": {},
        "users": None,
    }
    c.apply(
        "/api/v1/namespaces/kube-public/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cluster-info", "namespace": "kube-public"},
            "data": {"kubeconfig": yaml.safe_dump(kc, sort_keys=False)},
        },
    )
    c.apply(
        f"{RBAC}/namespaces/kube-public/roles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "kubeadm:bootstrap-signer-clusterinfo", "namespace": "kube-public"},
            "rules": [
                {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cluster-info"], "verbs": ["get"]}
            ],
        },
    )
    c.apply(
        f"{RBAC}/namespaces/kube-public/rolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "kubeadm:bootstrap-signer-clusterinfo", "namespace": "kube-public"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "kubeadm:bootstrap-signer-clusterinfo",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:anonymous"}],
        },
    )


def addons(c: Client, cs: ClusterSettings, server: str) -> None:
    from .files import dns_image, service_ip

    repo = cs.image_repository
    if not (cs.raw.get("dns") or {}).get("disabled"):
        c.apply(
            f"{KS}/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", "namespace": "kube-system"}},
        )
        c.apply(
            f"{KS}/configmaps",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "coredns", "namespace": "kube-system"},
                "data": {
                    "Corefile": f".:53 {{\n    errors\n    health\n    kubernetes "
                    f"{cs.dns_domain} in-addr.arpa ip6.arpa\n    forward . /etc/resolv.conf\n}}\n"
                },
            },
        )
        c.apply(
            "/apis/apps/v1/namespaces/kube-system/deployments",
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "coredns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                    "template": {
                        "metadata": {"labels": {"k8s-app": "kube-dns"}},
                        "spec": {
                            "containers": [{"name": "coredns", "image": dns_image(cs)}],
                            "serviceAccountName": "coredns",
                        },
                    },
                },
            },
        )
        c.apply(
            f"{KS}/services",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
                "spec": {
                    "clusterIP": service_ip(cs, 10),
                    "selector": {"k8s-app": "kube-dns"},
                    "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}],
                },
            },
        )
        say("[addons] Applied essential addon: CoreDNS")
    if not (cs.raw.get("proxy") or {}).get("disabled"):
        c.apply(
            f"{KS}/serviceaccounts",
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
            },
        )
        c.apply(
            f"{KS}/configmaps",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
                "data": {
                    "config.conf": yaml.safe_dump(
                        {
                            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                            "kind": "KubeProxyConfiguration",
                            "clusterCIDR": cs.pod_subnet,
                        }
                    ),
                    "kubeconfig.conf": f"server: {server}\n",
                },
            },
        )
        c.apply(
            "/apis/apps/v1/namespaces/kube-system/daemonsets",
            {
                "apiVersion": "apps/v1",
                "kind": "DaemonSet",
                "metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": {"k8s-app": "kube-proxy"}},
                "spec": {
                    "selector": {"matchLabels": {"k8s-app": "kube-proxy"}},
                    "template": {
                        "metadata": {"labels": {"k8s-app": "kube-proxy"}},
                        "spec": {
                            "containers": [
                                {"name": "kube-proxy", "image": f"{repo}/kube-proxy:{cs.kubernetes_version}"}
                            ],
                            "hostNetwork": True,
                            "nodeSelector": {"kubernetes.io/os": "linux"},
                            "priorityClassName": "system-node-critical",
                            "serviceAccountName": "kube-proxy",
                            "tolerations": [{"operator": "Exists"}],
                        },
                    },
                },
            },
        )
        say("[addons] Applied essential addon: kube-proxy")

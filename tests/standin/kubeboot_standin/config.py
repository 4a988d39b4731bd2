"""kubeadm.k8s.io/v1beta4 configuration decoding, strict like kubeadm's.

Schemas list every field of the v1beta4 types (kubeadm 1.33); decoding reports unknown
fields as apimachinery's strict decoder does and wrong types as encoding/json does.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from . import paths

GROUP = "kubeadm.k8s.io"
Schema = dict[str, Any]

ARG = {"name": "str", "value": "str"}
ENV = {"name": "str", "value": "str", "valueFrom": "any"}
TAINT = {"key": "str", "value": "str", "effect": "str", "timeAdded": "str"}
VOLUME = {"name": "str", "hostPath": "str", "mountPath": "str", "readOnly": "bool", "pathType": "str"}
COMPONENT = {"extraArgs": [ARG], "extraVolumes": [VOLUME], "extraEnvs": [ENV]}
TIMEOUTS = {
    k: "duration"
    for k in (
        "controlPlaneComponentHealthCheck",
        "kubeletHealthCheck",
        "kubernetesAPICall",
        "etcdAPICall",
        "tlsBootstrap",
        "discovery",
        "upgradeManifests",
    )
}
NODE_REG = {
    "name": "str",
    "criSocket": "str",
    "taints": [TAINT],
    "kubeletExtraArgs": [ARG],
    "ignorePreflightErrors": ["str"],
    "imagePullPolicy": "str",
    "imagePullSerial": "bool",
}
ENDPOINT = {"advertiseAddress": "str", "bindPort": "int"}
BOOTSTRAP_TOKEN = {
    "token": "str",
    "description": "str",
    "ttl": "duration",
    "expires": "str",
    "usages": ["str"],
    "groups": ["str"],
}
META = {"apiVersion": "str", "kind": "str"}
PATCHES = {"directory": "str"}

SCHEMAS: dict[str, Schema] = {
    "InitConfiguration": {
        **META,
        "bootstrapTokens": [BOOTSTRAP_TOKEN],
        "dryRun": "bool",
        "nodeRegistration": NODE_REG,
        "localAPIEndpoint": ENDPOINT,
        "certificateKey": "str",
        "skipPhases": ["str"],
        "patches": PATCHES,
        "timeouts": TIMEOUTS,
    },
    "ClusterConfiguration": {
        **META,
        "etcd": {
            "local": {
                "imageRepository": "str",
                "imageTag": "str",
                "dataDir": "str",
                "extraArgs": [ARG],
                "extraEnvs": [ENV],
                "serverCertSANs": ["str"],
                "peerCertSANs": ["str"],
            },
            "external": {"endpoints": ["str"], "caFile": "str", "certFile": "str", "keyFile": "str"},
        },
        "networking": {"serviceSubnet": "str", "podSubnet": "str", "dnsDomain": "str"},
        "kubernetesVersion": "str",
        "controlPlaneEndpoint": "str",
        "apiServer": {**COMPONENT, "certSANs": ["str"]},
        "controllerManager": COMPONENT,
        "scheduler": COMPONENT,
        "dns": {"imageRepository": "str", "imageTag": "str", "disabled": "bool"},
        "proxy": {"disabled": "bool"},
        "certificatesDir": "str",
        "imageRepository": "str",
        "featureGates": {"*": "bool"},
        "clusterName": "str",
        "encryptionAlgorithm": "str",
        "certificateValidityPeriod": "duration",
        "caCertificateValidityPeriod": "duration",
    },
    "JoinConfiguration": {
        **META,
        "dryRun": "bool",
        "nodeRegistration": NODE_REG,
        "caCertPath": "str",
        "discovery": {
            "bootstrapToken": {
                "token": "str",
                "apiServerEndpoint": "str",
                "caCertHashes": ["str"],
                "unsafeSkipCAVerification": "bool",
            },
            "file": {"kubeConfigPath": "str"},
            "tlsBootstrapToken": "str",
        },
        "controlPlane": {"localAPIEndpoint": ENDPOINT, "certificateKey": "str"},
        "skipPhases": ["str"],
        "patches": PATCHES,
        "timeouts": TIMEOUTS,
    },
    "ResetConfiguration": {
        **META,
        "dryRun": "bool",
        "force": "bool",
        "cleanupTmpDir": "bool",
        "certificatesDir": "str",
        "criSocket": "str",
        "ignorePreflightErrors": ["str"],
        "skipPhases": ["str"],
        "unmountFlags": ["str"],
    },
    "UpgradeConfiguration": {
        **META,
        "apply": "any",
        "diff": "any",
        "node": "any",
        "plan": "any",
        "timeouts": TIMEOUTS,
    },
}
COMPONENT_GROUPS = {
    "kubelet.config.k8s.io": "KubeletConfiguration",
    "kubeproxy.config.k8s.io": "KubeProxyConfiguration",
}
_GO_TYPES = {"str": "string", "int": "int32", "bool": "bool", "duration": "v1.Duration"}
_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$|^0$")


class ConfigError(Exception):
    """A configuration error with kubeadm's wording."""


def _json_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def _check(value: Any, schema: Any, path: str, kind: str, unknown: list[str], type_errors: list[str]) -> None:
    if schema == "any" or value is None:
        return
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            type_errors.append(
                f"json: cannot unmarshal {_json_kind(value)} into Go struct field {kind}.{path} of type object"
            )
            return
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            if "*" in schema:
                _check(v, schema["*"], sub, kind, unknown, type_errors)
            elif k not in schema:
                unknown.append(sub)
            else:
                _check(v, schema[k], sub, kind, unknown, type_errors)
        return
    if isinstance(schema, list):
        if not isinstance(value, list):
            type_errors.append(
                f"json: cannot unmarshal {_json_kind(value)} into Go struct field {kind}.{path} of type []"
            )
            return
        for item in value:
            _check(item, schema[0], path, kind, unknown, type_errors)
        return
    ok = {
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "duration": isinstance(value, str) and bool(_DURATION.match(value)),
    }[schema]
    if not ok:
        if schema == "duration" and isinstance(value, str):
            type_errors.append(f'time: invalid duration "{value}"')
        else:
            go_type = _GO_TYPES[schema]
            type_errors.append(
                f"json: cannot unmarshal {_json_kind(value)} into Go struct field {kind}.{path} of type {go_type}"
            )


class _UniqueKeyLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(
                f'yaml: unmarshal errors:\n  line {key_node.start_mark.line + 1}: key "{key}" already set in map'
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def gvk_string(api_version: str, kind: str) -> str:
    group, _, version = api_version.rpartition("/")
    return f'schema.GroupVersionKind{{Group:"{group}", Version:"{version}", Kind:"{kind}"}}'


@dataclass
class Documents:
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    component: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def split_documents(text: str, strict: bool) -> Documents:
    """Decode a kubeadm config file. strict=True (config validate) fails on unknown fields;
    strict=False (init/join/reset) prints them as warnings, as kubeadm does."""
    out = Documents()
    try:
        raw_docs = [d for d in yaml.load_all(text, Loader=_UniqueKeyLoader) if d is not None]
    except yaml.YAMLError as exc:
        raise ConfigError(f"error converting YAML to JSON: {exc}") from exc
    for doc in raw_docs:
        if not isinstance(doc, dict):
            raise ConfigError("error unmarshaling JSON: while decoding JSON: Object 'Kind' is missing")
        api_version, kind = doc.get("apiVersion", ""), doc.get("kind", "")
        if not api_version or not kind:
            raise ConfigError(
                f"invalid configuration for GroupVersionKind {gvk_string(api_version, kind)}: "
                "kind and apiVersion is mandatory information that must be specified"
            )
        group, _, version = str(api_version).rpartition("/")
        if group in COMPONENT_GROUPS:
            out.component[kind] = doc
            continue
        if group != GROUP:
            out.warnings.append(
                f"[config] WARNING: Ignored configuration document with GroupVersionKind {group}/{version}, Kind={kind}"
            )
            continue
        if version in ("v1beta1", "v1beta2"):
            raise ConfigError(
                f'your configuration file uses an old API spec: "{api_version}" (kind: "{kind}"). '
                "Please use kubeadm v1.22 instead and run 'kubeadm config migrate --old-config old.yaml "
                "--new-config new.yaml', which will write the new, similar spec using a newer API version."
            )
        if version not in ("v1beta3", "v1beta4"):
            raise ConfigError(f'unable to decode config: no kind "{kind}" is registered for version "{api_version}"')
        if kind not in SCHEMAS:
            raise ConfigError(f'no kind "{kind}" is registered for version "{api_version}" in scheme')
        unknown: list[str] = []
        type_errors: list[str] = []
        if version == "v1beta4":
            _check(doc, SCHEMAS[kind], "", kind, unknown, type_errors)
        if type_errors:
            raise ConfigError(type_errors[0])
        if unknown:
            msg = (
                f"error unmarshaling configuration {gvk_string(api_version, kind)}: strict decoding error: "
                + ", ".join(f'unknown field "{u}"' for u in unknown)
            )
            if strict:
                raise ConfigError(msg)
            out.warnings.append(msg)
        if kind in out.docs:
            raise ConfigError(f"invalid configuration: GVK {gvk_string(api_version, kind)} is specified twice")
        out.docs[kind] = doc
    return out


# ---- defaults and validation (kubeadm's SetDefaults_* and ValidateInitConfiguration, the parts used) ----

DEFAULT_CRI = "unix:///var/run/containerd/containerd.sock"
TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _get(d: dict[str, Any], *keys: str, default: Any = None) -> Any:
    cur: Any = d
    for k in keys:
        if not isinstance(cur, dict) or cur.get(k) is None:
            return default
        cur = cur[k]
    return cur


def args_dict(args: list[dict[str, str]] | None) -> dict[str, str]:
    return {a["name"]: a.get("value", "") for a in args or []}


@dataclass
class ClusterSettings:
    kubernetes_version: str
    cluster_name: str
    pod_subnet: str
    service_subnet: str
    dns_domain: str
    control_plane_endpoint: str
    cert_sans: list[str]
    image_repository: str
    certificates_dir: str
    node_cidr_mask: int
    raw: dict[str, Any]
    # certificateValidityPeriod / caCertificateValidityPeriod (kubeadm's defaults: 1 year, 10 years)
    cert_validity: dt.timedelta = dt.timedelta(hours=8760)
    ca_validity: dt.timedelta = dt.timedelta(hours=87600)


def cluster_settings(doc: dict[str, Any] | None, default_version: str) -> ClusterSettings:
    d = doc or {"apiVersion": f"{GROUP}/v1beta4", "kind": "ClusterConfiguration"}
    cm_args = args_dict(_get(d, "controllerManager", "extraArgs", default=[]))
    pod_subnet = _get(d, "networking", "podSubnet", default="")
    version = normalize_version(str(_get(d, "kubernetesVersion", default=default_version)), default_version)
    errs: list[str] = []
    for fname, value in (
        ("networking.podSubnet", pod_subnet),
        ("networking.serviceSubnet", _get(d, "networking", "serviceSubnet", default="")),
    ):
        for part in filter(None, str(value).split(",")):
            try:
                ipaddress.ip_network(part.strip(), strict=False)
            except ValueError:
                errs.append(f'{fname}: Invalid value: "{value}": couldn\'t parse subnet')
    if errs:
        raise ConfigError(errs[0])
    return ClusterSettings(
        kubernetes_version=str(version),
        cluster_name=_get(d, "clusterName", default="kubernetes"),
        pod_subnet=str(pod_subnet),
        service_subnet=_get(d, "networking", "serviceSubnet", default="10.96.0.0/12"),
        dns_domain=_get(d, "networking", "dnsDomain", default="cluster.local"),
        control_plane_endpoint=_get(d, "controlPlaneEndpoint", default=""),
        cert_sans=list(_get(d, "apiServer", "certSANs", default=[])),
        image_repository=_get(d, "imageRepository", default="registry.k8s.io"),
        certificates_dir=_get(d, "certificatesDir", default="/etc/kubernetes/pki"),
        node_cidr_mask=int(cm_args.get("node-cidr-mask-size", cm_args.get("node-cidr-mask-size-ipv4", "24"))),
        raw=d,
        cert_validity=dt.timedelta(seconds=parse_duration(str(_get(d, "certificateValidityPeriod", default="8760h")))),
        ca_validity=dt.timedelta(seconds=parse_duration(str(_get(d, "caCertificateValidityPeriod", default="87600h")))),
    )


# kubeadm's MinimumControlPlaneVersion: one minor below its own.
MIN_CONTROL_PLANE = (1, paths.MINOR - 1, 0)
_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)([-+].*)?$")


def normalize_version(version: str, default_version: str) -> str:
    """kubeadm's NormalizeKubernetesVersion, offline: release labels (stable, stable-1.33, latest...) resolve to
    the stand-in's own version; a bare 1.33.1 gets its "v"; below MinimumControlPlaneVersion is an error."""
    v = version.strip()
    if v.startswith(("stable", "latest")) or v == "":
        return default_version
    m = _SEMVER.match(v)
    if not m:
        raise ConfigError(f'couldn\'t parse Kubernetes version "{v}"')
    v = v if v.startswith("v") else f"v{v}"
    if tuple(int(x) for x in m.groups()[:3]) < MIN_CONTROL_PLANE:
        raise ConfigError(
            "this version of kubeadm only supports deploying clusters with the control plane version >= "
            f"{'.'.join(map(str, MIN_CONTROL_PLANE))}. Current version: {v}"
        )
    return v


def validate_node_registration(nr: dict[str, Any], path: str) -> None:
    name = nr.get("name")
    if name and not DNS1123.match(name):
        raise ConfigError(
            f'{path}.name: Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
            "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        )
    for t in nr.get("taints") or []:
        if t.get("effect") not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise ConfigError(
                f'{path}.taints[0].effect: Unsupported value: "{t.get("effect")}": supported values: '
                '"NoSchedule", "PreferNoSchedule", "NoExecute"'
            )
    cri = nr.get("criSocket")
    if cri and not str(cri).startswith("unix://"):
        raise ConfigError(f'{path}.criSocket: Invalid value: "{cri}": the URL scheme is missing or not supported')


def validate_token(token: str, path: str) -> None:
    if not TOKEN_RE.match(token):
        raise ConfigError(f'{path}: Invalid value: "{token}": the bootstrap token is invalid')


def parse_duration(s: str) -> float:
    total = 0.0
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    for num, _, unit in re.findall(r"(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)", s):
        total += float(num) * units[unit]
    return total

"""A CRI v1 client (runtime.v1.RuntimeService and ImageService) over containerd's socket.

gRPC comes from python3-grpcio (imported when a Runtime is made, so this module imports without it); the messages
are encoded and decoded here by a small schema-driven protobuf codec (field numbers from k8s.io/cri-api's
runtime/v1 api.proto, written down below for the fields the stand-in uses; unknown fields are skipped).
Errors of the runtime become CriError with the status code as crictl prints it.
"""

from __future__ import annotations

import io
import json
import pkgutil
import subprocess
import tarfile
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from typing import Any

from . import paths
from .apiserver.protobuf import delimited as _delimited
from .apiserver.protobuf import encode_varint as _varint
from .apiserver.protobuf import fields as wire_fields
from .apiserver.protobuf import key as _key

DEFAULT_ENDPOINT = "unix:///run/containerd/containerd.sock"
DEFAULT_SANDBOX_IMAGE = "registry.k8s.io/pause:3.6"  # containerd 1.6's default
CONTAINERD_CONFIG = "/etc/containerd/config.toml"
K8S_NAMESPACE = "k8s.io"

# Go's codes.Code names (what crictl prints after "code ="), by the status code's number.
CODE_NAMES = ["OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists",
              "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
              "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated"]


class CriError(Exception):
    """An error of a CRI call; str() is grpc-go's status error text as crictl shows it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"rpc error: code = {code} desc = {message}")
        self.code = code
        self.message = message


class GrpcMissing(CriError):
    """python3-grpcio is not installed (a CriError, code Unavailable, so that callers need one except clause)."""


# ---------------------------------------------------------------------------------------------------------------
# Protobuf codec. A schema maps a field's name to F(number, kind, repeated); a kind is one of the scalar kinds
# below, a tuple of enum value names (index = number), or another schema (a nested message). Maps are
# map<string, string> (repeated entries of key = 1, value = 2).

STRING, BOOL, INT, UINT, MAP = "string", "bool", "int", "uint", "map"
Kind = str | tuple[str, ...] | dict[str, "F"]


@dataclass(frozen=True)
class F:
    number: int
    kind: Kind
    repeated: bool = False




def _encode_one(f: F, value: Any) -> bytes:
    if isinstance(f.kind, dict):
        return _delimited(f.number, encode(f.kind, value))
    if isinstance(f.kind, tuple):
        number = f.kind.index(value) if isinstance(value, str) else int(value)
        return _key(f.number, 0) + _varint(number)
    if f.kind == STRING:
        return _delimited(f.number, str(value).encode())
    if f.kind in (INT, UINT, BOOL):
        return _key(f.number, 0) + _varint(int(value))
    raise ValueError(f"unknown field kind {f.kind!r}")


def _is_default(f: F, value: Any) -> bool:
    """proto3 leaves out fields at their default (a nested message is present when given, even empty)."""
    if value is None:
        return True
    if f.repeated or f.kind == MAP:
        return not value
    if isinstance(f.kind, dict):
        return False
    if isinstance(f.kind, tuple):
        return value in (0, f.kind[0])
    return not value


def encode(schema: dict[str, F], msg: dict[str, Any]) -> bytes:
    """A message (dict by field name) as protobuf bytes, fields in number order."""
    out = bytearray()
    for name, value in sorted(msg.items(), key=lambda kv: schema[kv[0]].number):
        f = schema[name]
        if _is_default(f, value):
            continue
        if f.kind == MAP:
            for k, v in value.items():
                out += _delimited(f.number, _delimited(1, str(k).encode()) + _delimited(2, str(v).encode()))
        elif f.repeated:
            for item in value:
                out += _encode_one(f, item)
        else:
            out += _encode_one(f, value)
    return bytes(out)


def _default(f: F) -> Any:
    if f.kind == MAP:
        return {}
    if f.repeated:
        return []
    if isinstance(f.kind, dict):
        return None
    if isinstance(f.kind, tuple):
        return f.kind[0]
    return {STRING: "", BOOL: False, INT: 0, UINT: 0}[f.kind]


def _decode_one(f: F, wire: int, raw: Any) -> Any:
    if isinstance(f.kind, dict):
        return decode(f.kind, raw)
    if f.kind == STRING:
        return raw.decode()
    if wire != 0:
        raise ValueError(f"field {f.number}: wire type {wire} for a {f.kind}")
    if isinstance(f.kind, tuple):
        return f.kind[raw] if raw < len(f.kind) else raw
    if f.kind == BOOL:
        return bool(raw)
    if f.kind == INT and raw >= 1 << 63:
        return raw - (1 << 64)
    return raw


def decode(schema: dict[str, F], data: bytes) -> dict[str, Any]:
    """Protobuf bytes as a dict by field name, every field of the schema present (proto3 defaults)."""
    by_number = {f.number: (name, f) for name, f in schema.items()}
    msg = {name: _default(f) for name, f in schema.items()}
    for number, wire, raw in wire_fields(data):
        if number not in by_number:
            continue
        name, f = by_number[number]
        if f.kind == MAP:
            entry = {n: v.decode() for n, _, v in wire_fields(raw) if n in (1, 2)}
            msg[name][entry.get(1, "")] = entry.get(2, "")
        elif f.repeated:
            msg[name].append(_decode_one(f, wire, raw))
        else:
            msg[name] = _decode_one(f, wire, raw)
    return msg


# ---------------------------------------------------------------------------------------------------------------
# The messages of runtime/v1 the stand-in sends or reads (a subset of each message's fields).

NAMESPACE_MODE = ("POD", "CONTAINER", "NODE", "TARGET")
PROTOCOL = ("TCP", "UDP", "SCTP")
SANDBOX_STATE = ("SANDBOX_READY", "SANDBOX_NOTREADY")
CONTAINER_STATE = ("CONTAINER_CREATED", "CONTAINER_RUNNING", "CONTAINER_EXITED", "CONTAINER_UNKNOWN")

VERSION_REQUEST = {"version": F(1, STRING)}
VERSION_RESPONSE = {"version": F(1, STRING), "runtime_name": F(2, STRING), "runtime_version": F(3, STRING),
                    "runtime_api_version": F(4, STRING)}
RUNTIME_CONDITION = {"type": F(1, STRING), "status": F(2, BOOL), "reason": F(3, STRING), "message": F(4, STRING)}
STATUS_REQUEST = {"verbose": F(1, BOOL)}
STATUS_RESPONSE = {"status": F(1, {"conditions": F(1, RUNTIME_CONDITION, True)}), "info": F(2, MAP)}
SANDBOX_METADATA = {"name": F(1, STRING), "uid": F(2, STRING), "namespace": F(3, STRING), "attempt": F(4, UINT)}
DNS_CONFIG = {"servers": F(1, STRING, True), "searches": F(2, STRING, True), "options": F(3, STRING, True)}
PORT_MAPPING = {"protocol": F(1, PROTOCOL), "container_port": F(2, INT), "host_port": F(3, INT),
                "host_ip": F(4, STRING)}
NAMESPACE_OPTION = {"network": F(1, NAMESPACE_MODE), "pid": F(2, NAMESPACE_MODE), "ipc": F(3, NAMESPACE_MODE),
                    "target_id": F(4, STRING)}
LINUX_SANDBOX_SECURITY = {"namespace_options": F(1, NAMESPACE_OPTION), "privileged": F(6, BOOL)}
LINUX_SANDBOX_CONFIG = {"cgroup_parent": F(1, STRING), "security_context": F(2, LINUX_SANDBOX_SECURITY),
                        "sysctls": F(3, MAP)}
SANDBOX_CONFIG = {"metadata": F(1, SANDBOX_METADATA), "hostname": F(2, STRING), "log_directory": F(3, STRING),
                  "dns_config": F(4, DNS_CONFIG), "port_mappings": F(5, PORT_MAPPING, True), "labels": F(6, MAP),
                  "annotations": F(7, MAP), "linux": F(8, LINUX_SANDBOX_CONFIG)}
RUN_SANDBOX_REQUEST = {"config": F(1, SANDBOX_CONFIG), "runtime_handler": F(2, STRING)}
RUN_SANDBOX_RESPONSE = {"pod_sandbox_id": F(1, STRING)}
SANDBOX_ID_REQUEST = {"pod_sandbox_id": F(1, STRING)}  # Stop/RemovePodSandboxRequest
EMPTY: dict[str, F] = {}
SANDBOX_STATUS_REQUEST = {"pod_sandbox_id": F(1, STRING), "verbose": F(2, BOOL)}
SANDBOX_NETWORK = {"ip": F(1, STRING), "additional_ips": F(2, {"ip": F(1, STRING)}, True)}
SANDBOX_STATUS = {"id": F(1, STRING), "metadata": F(2, SANDBOX_METADATA), "state": F(3, SANDBOX_STATE),
                  "created_at": F(4, INT), "network": F(5, SANDBOX_NETWORK), "labels": F(7, MAP),
                  "annotations": F(8, MAP), "runtime_handler": F(9, STRING)}
SANDBOX_STATUS_RESPONSE = {"status": F(1, SANDBOX_STATUS), "info": F(2, MAP)}
SANDBOX_FILTER = {"id": F(1, STRING), "state": F(2, {"state": F(1, SANDBOX_STATE)}), "label_selector": F(3, MAP)}
LIST_SANDBOX_REQUEST = {"filter": F(1, SANDBOX_FILTER)}
POD_SANDBOX = {"id": F(1, STRING), "metadata": F(2, SANDBOX_METADATA), "state": F(3, SANDBOX_STATE),
               "created_at": F(4, INT), "labels": F(5, MAP), "annotations": F(6, MAP), "runtime_handler": F(7, STRING)}
LIST_SANDBOX_RESPONSE = {"items": F(1, POD_SANDBOX, True)}
CONTAINER_METADATA = {"name": F(1, STRING), "attempt": F(2, UINT)}
IMAGE_SPEC = {"image": F(1, STRING), "annotations": F(2, MAP), "user_specified_image": F(18, STRING)}
KEY_VALUE = {"key": F(1, STRING), "value": F(2, STRING)}
LINUX_CONTAINER_SECURITY = {"privileged": F(2, BOOL), "namespace_options": F(3, NAMESPACE_OPTION)}
LINUX_CONTAINER_CONFIG = {"security_context": F(2, LINUX_CONTAINER_SECURITY)}
CONTAINER_CONFIG = {"metadata": F(1, CONTAINER_METADATA), "image": F(2, IMAGE_SPEC), "command": F(3, STRING, True),
                    "args": F(4, STRING, True), "working_dir": F(5, STRING), "envs": F(6, KEY_VALUE, True),
                    "labels": F(9, MAP), "annotations": F(10, MAP), "log_path": F(11, STRING),
                    "linux": F(15, LINUX_CONTAINER_CONFIG)}
CREATE_CONTAINER_REQUEST = {"pod_sandbox_id": F(1, STRING), "config": F(2, CONTAINER_CONFIG),
                            "sandbox_config": F(3, SANDBOX_CONFIG)}
CONTAINER_ID_REQUEST = {"container_id": F(1, STRING)}  # Create response; Start/RemoveContainerRequest
STOP_CONTAINER_REQUEST = {"container_id": F(1, STRING), "timeout": F(2, INT)}
CONTAINER_FILTER = {"id": F(1, STRING), "state": F(2, {"state": F(1, CONTAINER_STATE)}),
                    "pod_sandbox_id": F(3, STRING), "label_selector": F(4, MAP)}
LIST_CONTAINERS_REQUEST = {"filter": F(1, CONTAINER_FILTER)}
CONTAINER = {"id": F(1, STRING), "pod_sandbox_id": F(2, STRING), "metadata": F(3, CONTAINER_METADATA),
             "image": F(4, IMAGE_SPEC), "image_ref": F(5, STRING), "state": F(6, CONTAINER_STATE),
             "created_at": F(7, INT), "labels": F(8, MAP), "annotations": F(9, MAP), "image_id": F(10, STRING)}
LIST_CONTAINERS_RESPONSE = {"containers": F(1, CONTAINER, True)}
CONTAINER_STATUS_REQUEST = {"container_id": F(1, STRING), "verbose": F(2, BOOL)}
CONTAINER_STATUS = {"id": F(1, STRING), "metadata": F(2, CONTAINER_METADATA), "state": F(3, CONTAINER_STATE),
                    "created_at": F(4, INT), "started_at": F(5, INT), "finished_at": F(6, INT),
                    "exit_code": F(7, INT), "image": F(8, IMAGE_SPEC), "image_ref": F(9, STRING),
                    "reason": F(10, STRING), "message": F(11, STRING), "labels": F(12, MAP),
                    "annotations": F(13, MAP), "log_path": F(15, STRING), "image_id": F(17, STRING)}
CONTAINER_STATUS_RESPONSE = {"status": F(1, CONTAINER_STATUS), "info": F(2, MAP)}
IMAGE_STATUS_REQUEST = {"image": F(1, IMAGE_SPEC), "verbose": F(2, BOOL)}
IMAGE = {"id": F(1, STRING), "repo_tags": F(2, STRING, True), "repo_digests": F(3, STRING, True),
         "size": F(4, UINT), "username": F(6, STRING), "pinned": F(8, BOOL)}
IMAGE_STATUS_RESPONSE = {"image": F(1, IMAGE), "info": F(2, MAP)}


# ---------------------------------------------------------------------------------------------------------------
# The client.

@dataclass
class SandboxConfig:
    name: str
    uid: str
    namespace: str
    attempt: int = 0
    hostname: str = ""
    host_network: bool = False
    log_directory: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    cgroup_parent: str = ""
    dns_servers: list[str] = field(default_factory=list)
    dns_searches: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    port_mappings: list[dict[str, Any]] = field(default_factory=list)  # protocol/container_port/host_port/host_ip


@dataclass
class ContainerConfig:
    name: str
    image: str
    command: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    log_path: str = ""
    attempt: int = 0
    working_dir: str = ""


def namespace_options(host_network: bool) -> dict[str, Any]:
    """As the kubelet sets them for a v1 pod: the pod's network (or the node's), a PID namespace per container."""
    return {"network": "NODE" if host_network else "POD", "pid": "CONTAINER", "ipc": "POD"}


def sandbox_message(c: SandboxConfig) -> dict[str, Any]:
    return {
        "metadata": {"name": c.name, "uid": c.uid, "namespace": c.namespace, "attempt": c.attempt},
        "hostname": c.hostname,
        "log_directory": c.log_directory,
        "dns_config": {"servers": c.dns_servers, "searches": c.dns_searches, "options": c.dns_options},
        "port_mappings": [{"protocol": str(p.get("protocol") or "TCP").upper(),
                           "container_port": p.get("container_port", 0), "host_port": p.get("host_port", 0),
                           "host_ip": p.get("host_ip", "")} for p in c.port_mappings],
        "labels": c.labels,
        "annotations": c.annotations,
        "linux": {"cgroup_parent": c.cgroup_parent,
                  "security_context": {"namespace_options": namespace_options(c.host_network)}},
    }


def container_message(c: ContainerConfig, sandbox: SandboxConfig) -> dict[str, Any]:
    return {
        "metadata": {"name": c.name, "attempt": c.attempt},
        "image": {"image": c.image},
        "command": c.command,
        "args": c.args,
        "working_dir": c.working_dir,
        "envs": [{"key": k, "value": v} for k, v in c.env.items()],
        "labels": c.labels,
        "annotations": c.annotations,
        "log_path": c.log_path,
        "linux": {"security_context": {"namespace_options": namespace_options(sandbox.host_network)}},
    }


def socket_path(endpoint: str) -> str:
    """The socket's path on this node (below the test root under the stand-in's own tests)."""
    return str(paths.host(endpoint.removeprefix("unix://") or DEFAULT_ENDPOINT.removeprefix("unix://")))


def _grpc() -> Any:
    try:
        import grpc  # python3-grpcio is optional until a Runtime is made
    except ImportError as exc:
        raise GrpcMissing("Unavailable", f"the CRI client needs python3-grpcio (apt-get install python3-grpcio): "
                                         f"{exc}") from None
    return grpc


def _info(raw: dict[str, str]) -> dict[str, Any]:
    """The verbose info map, each value parsed as JSON where it is JSON (as crictl shows it)."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _metadata(meta: dict[str, Any] | None, schema: dict[str, F]) -> dict[str, Any]:
    return meta if meta is not None else {name: _default(f) for name, f in schema.items()}


def _sandbox(item: dict[str, Any]) -> dict[str, Any]:
    return {"id": item["id"], "metadata": _metadata(item["metadata"], SANDBOX_METADATA), "state": item["state"],
            "created_at": item["created_at"], "labels": item["labels"], "annotations": item["annotations"],
            "runtime_handler": item["runtime_handler"]}


def _container(item: dict[str, Any]) -> dict[str, Any]:
    return {"id": item["id"], "pod_sandbox_id": item.get("pod_sandbox_id", ""),
            "metadata": _metadata(item["metadata"], CONTAINER_METADATA),
            "image": (item["image"] or {}).get("image", ""), "image_ref": item["image_ref"], "state": item["state"],
            "created_at": item["created_at"], "labels": item["labels"], "annotations": item["annotations"]}


class Runtime:
    """A CRI runtime (and image) service at endpoint; every call waits at most timeout seconds."""

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, timeout: float = 240.0) -> None:
        self._grpc = _grpc()
        self.endpoint = endpoint
        self.timeout = timeout
        self._channel = self._grpc.insecure_channel(f"unix:{socket_path(endpoint)}")

    def _call(self, method: str, req_schema: dict[str, F], request: dict[str, Any],
              resp_schema: dict[str, F]) -> dict[str, Any]:
        service = "ImageService" if method in ("ImageStatus", "ListImages", "PullImage", "RemoveImage") \
            else "RuntimeService"
        stub = self._channel.unary_unary(f"/runtime.v1.{service}/{method}", request_serializer=bytes,
                                         response_deserializer=bytes)
        try:
            raw = stub(encode(req_schema, request), timeout=self.timeout)
        except self._grpc.RpcError as exc:
            number = exc.code().value[0]
            name = CODE_NAMES[number] if number < len(CODE_NAMES) else f"Code({number})"
            raise CriError(name, exc.details() or "") from None
        return decode(resp_schema, raw)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def version(self) -> dict[str, Any]:
        return self._call("Version", VERSION_REQUEST, {"version": "v1"}, VERSION_RESPONSE)

    def status(self) -> dict[str, Any]:
        resp = self._call("Status", STATUS_REQUEST, {}, STATUS_RESPONSE)
        return {"conditions": (resp["status"] or {}).get("conditions", [])}

    def run_pod_sandbox(self, config: SandboxConfig, runtime_handler: str = "") -> str:
        resp = self._call("RunPodSandbox", RUN_SANDBOX_REQUEST,
                          {"config": sandbox_message(config), "runtime_handler": runtime_handler}, RUN_SANDBOX_RESPONSE)
        return str(resp["pod_sandbox_id"])

    def stop_pod_sandbox(self, sandbox_id: str) -> None:
        self._call("StopPodSandbox", SANDBOX_ID_REQUEST, {"pod_sandbox_id": sandbox_id}, EMPTY)

    def remove_pod_sandbox(self, sandbox_id: str) -> None:
        self._call("RemovePodSandbox", SANDBOX_ID_REQUEST, {"pod_sandbox_id": sandbox_id}, EMPTY)

    def pod_sandbox_status(self, sandbox_id: str, verbose: bool = False) -> dict[str, Any]:
        resp = self._call("PodSandboxStatus", SANDBOX_STATUS_REQUEST,
                          {"pod_sandbox_id": sandbox_id, "verbose": verbose}, SANDBOX_STATUS_RESPONSE)
        status = resp["status"] or decode(SANDBOX_STATUS, b"")
        network = status["network"] or {"ip": "", "additional_ips": []}
        return {**_sandbox(status),
                "network": {"ip": network["ip"], "additional_ips": [a["ip"] for a in network["additional_ips"]]},
                "info": _info(resp["info"])}

    def list_pod_sandboxes(self) -> list[dict[str, Any]]:
        resp = self._call("ListPodSandbox", LIST_SANDBOX_REQUEST, {}, LIST_SANDBOX_RESPONSE)
        return [_sandbox(item) for item in resp["items"]]

    def create_container(self, sandbox_id: str, config: ContainerConfig, sandbox: SandboxConfig) -> str:
        request = {"pod_sandbox_id": sandbox_id, "config": container_message(config, sandbox),
                   "sandbox_config": sandbox_message(sandbox)}
        resp = self._call("CreateContainer", CREATE_CONTAINER_REQUEST, request, CONTAINER_ID_REQUEST)
        return str(resp["container_id"])

    def start_container(self, container_id: str) -> None:
        self._call("StartContainer", CONTAINER_ID_REQUEST, {"container_id": container_id}, EMPTY)

    def stop_container(self, container_id: str, timeout: int = 0) -> None:
        self._call("StopContainer", STOP_CONTAINER_REQUEST, {"container_id": container_id, "timeout": timeout}, EMPTY)

    def remove_container(self, container_id: str) -> None:
        self._call("RemoveContainer", CONTAINER_ID_REQUEST, {"container_id": container_id}, EMPTY)

    def list_containers(self, sandbox_id: str = "") -> list[dict[str, Any]]:
        request = {"filter": {"pod_sandbox_id": sandbox_id}} if sandbox_id else {}
        resp = self._call("ListContainers", LIST_CONTAINERS_REQUEST, request, LIST_CONTAINERS_RESPONSE)
        return [_container(item) for item in resp["containers"]]

    def container_status(self, container_id: str) -> dict[str, Any]:
        resp = self._call("ContainerStatus", CONTAINER_STATUS_REQUEST, {"container_id": container_id},
                          CONTAINER_STATUS_RESPONSE)
        status = resp["status"] or decode(CONTAINER_STATUS, b"")
        return {**_container(status), **{k: status[k] for k in ("exit_code", "started_at", "finished_at", "reason",
                                                               "message", "log_path")}}

    def image_status(self, image: str) -> dict[str, Any] | None:
        resp = self._call("ImageStatus", IMAGE_STATUS_REQUEST, {"image": {"image": image}}, IMAGE_STATUS_RESPONSE)
        found = resp["image"]
        if not found or not found["id"]:
            return None
        return {"id": found["id"], "repo_tags": found["repo_tags"], "repo_digests": found["repo_digests"],
                "size": found["size"]}


# ---------------------------------------------------------------------------------------------------------------
# The pause image (built from tests/standin/pause by build_repo.py, package data of the kubelet zipapp).

def sandbox_image() -> str:
    """The sandbox (pause) image containerd is configured with (CRI plugin's sandbox_image), else 1.6's default."""
    try:
        config = tomllib.loads(paths.host(CONTAINERD_CONFIG).read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return DEFAULT_SANDBOX_IMAGE
    plugins = config.get("plugins") or {}
    image = (plugins.get("io.containerd.grpc.v1.cri") or {}).get("sandbox_image")
    if not image:  # containerd 2.x's layout
        image = ((plugins.get("io.containerd.cri.v1.images") or {}).get("pinned_images") or {}).get("sandbox")
    return str(image or DEFAULT_SANDBOX_IMAGE)


def packaged_pause_image() -> bytes:
    data = pkgutil.get_data(__package__ or "kubeboot_standin", "pause.tar")
    if not data:
        raise FileNotFoundError("kubeboot_standin/pause.tar is not packaged here (it is in the kubelet zipapp)")
    return data


def archive_name(archive: bytes) -> str:
    """The first RepoTags entry of a docker-archive tar's manifest.json."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        member = tar.extractfile("manifest.json")
        if member is None:
            raise ValueError("manifest.json missing from the image archive")
        return str(json.load(member)[0]["RepoTags"][0])


def _ctr(endpoint: str, *args: str) -> str:
    cp = subprocess.run(["ctr", "--address", socket_path(endpoint), "-n", K8S_NAMESPACE, *args],
                        capture_output=True, text=True, check=False)
    if cp.returncode != 0:
        raise CriError("Unknown", f"ctr {' '.join(args)}: {(cp.stderr or cp.stdout).strip()}")
    return cp.stdout


def ensure_pause_image(reference: str, endpoint: str = DEFAULT_ENDPOINT, archive: bytes | None = None) -> bool:
    """Make `reference` an image of containerd's k8s.io namespace from the packaged pause image, unless the CRI
    already has it; True when it had to import. Nothing is pulled (no registry here)."""
    with Runtime(endpoint, timeout=60) as runtime:
        if runtime.image_status(reference) is not None:
            return False
        data = archive if archive is not None else packaged_pause_image()
        with tempfile.NamedTemporaryFile(suffix=".tar") as tmp:
            tmp.write(data)
            tmp.flush()
            _ctr(endpoint, "images", "import", "--all-platforms", tmp.name)
        name = archive_name(data)
        if name != reference:
            _ctr(endpoint, "images", "tag", "--force", name, reference)
        deadline = time.monotonic() + 30
        while runtime.image_status(reference) is None:  # the CRI plugin learns of new images from events
            if time.monotonic() > deadline:
                raise CriError("NotFound", f"imported {name} as {reference}, but the CRI does not list it")
            time.sleep(0.2)
    return True


def available() -> bool:
    """Whether python3-grpcio can be imported (the CRI client works)."""
    try:
        _grpc()
    except GrpcMissing:
        return False
    return True


"""The kubelet's pod workers: every pod given to this node runs as a real pod sandbox through containerd's CRI.

Pods come from the static pod directory (the control plane's manifests) and from the API server (pods whose
spec.nodeName is this node: the DaemonSet pods of kube-proxy and the pod network, test pods). Each gets a pod
sandbox (containerd runs the pause image with runc; a pod without hostNetwork gets its network from the CNI
plugins configured in /etc/cni/net.d, so the bridge plugin's errors are the real ones). A container whose image
containerd has is created and started in the sandbox; the others (kube-apiserver, flanneld, kube-proxy, ...: no
image of them exists here) are pulled through the stand-in's image store and their work is done by the stand-in
itself (the API server process, cni.Agent), so they are reported running once pulled.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import cri, images, paths
from .client import ApiError, Client

RETRY_SECONDS = 5.0


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def usable(endpoint: str) -> bool:
    """True on a node (not under a test root) whose kubelet can speak CRI: the gRPC library and the socket."""
    return paths.root() == Path("/") and Path(cri.socket_path(endpoint)).exists() and cri.available()


MIRROR = "kubernetes.io/config.mirror"


def static_uid(text: str, node: str) -> str:
    """A static pod's UID: a hash of its manifest and the node (the kubelet's config hash)."""
    return hashlib.md5(f"{text}\n{node}".encode(), usedforsecurity=False).hexdigest()


@dataclass
class Pod:
    uid: str
    name: str
    namespace: str
    spec: dict[str, Any]
    labels: dict[str, str] = field(default_factory=dict)
    source: str = "api"  # "file" for a static pod

    @property
    def host_network(self) -> bool:
        return bool(self.spec.get("hostNetwork"))


def cgroup_parent(driver: str, uid: str) -> str:
    """Where the pod's cgroup goes, as the kubelet names it for a BestEffort pod under each cgroup driver."""
    if driver == "systemd":
        return f"kubepods-besteffort-pod{uid.replace('-', '_')}.slice"
    return f"/kubepods/besteffort/pod{uid}"


class PodWorkers:
    def __init__(
        self, node: str, address: str, endpoint: str, cgroup_driver: str, log: Callable[[str], None]
    ) -> None:
        self.node = node
        self.address = address
        self.endpoint = endpoint
        self._runtime: cri.Runtime | None = None
        self.cgroup_driver = cgroup_driver
        self.log = log
        self.last_try: dict[str, float] = {}
        self.errors: dict[str, str] = {}
        self.sent: dict[str, dict[str, Any]] = {}
        self.pulled: set[tuple[str, str]] = set()  # (pod uid, container) whose stand-in image was pulled
        self.ips: dict[str, str] = {}  # sandbox id -> pod IP
        self.pause_checked = False
        self.mirrors: dict[str, str] = {}  # static pod name -> the UID (manifest hash) its mirror pod was made for
        self.orphans: list[tuple[str, str]] = []  # mirror pods in the API whose static pod is gone or changed

    @property
    def runtime(self) -> cri.Runtime:
        if self._runtime is None:
            self._runtime = cri.Runtime(self.endpoint, timeout=120)
        return self._runtime

    # ---- what should run ----
    def desired(self, static: list[tuple[str, dict[str, Any]]], client: Client | None) -> tuple[dict[str, Pod], bool]:
        """The pods this node should run, and whether the API server's part of that is known (without it the
        kubelet keeps the API pods that run: it does not kill what it cannot see)."""
        pods: dict[str, Pod] = {}
        for text, manifest in static:
            meta = manifest.get("metadata") or {}
            uid = static_uid(text, self.node)
            pods[uid] = Pod(uid, f"{meta.get('name')}-{self.node}", meta.get("namespace") or "kube-system",
                            manifest.get("spec") or {}, dict(meta.get("labels") or {}), "file")
        if client is None:
            return pods, False
        try:
            items = client.get(f"/api/v1/pods?fieldSelector=spec.nodeName%3D{self.node}").get("items") or []
        except (ApiError, OSError):
            return pods, False
        statics = {(pod.namespace, pod.name): uid for uid, pod in pods.items()}
        mirrors: dict[tuple[str, str], str] = {}
        for item in items:
            meta = item["metadata"]
            mirror_of = (meta.get("annotations") or {}).get(MIRROR)
            if mirror_of is not None:  # the API's copy of a static pod: not a pod to run
                mirrors[(meta.get("namespace", "default"), meta["name"])] = mirror_of
                continue
            if meta.get("deletionTimestamp"):
                continue
            pods[meta["uid"]] = Pod(meta["uid"], meta["name"], meta.get("namespace", "default"),
                                    item.get("spec") or {}, dict(meta.get("labels") or {}))
        # A mirror pod missing or made for another manifest is made again (mirror()); one without its static pod
        # any more is deleted (sync()).
        for key, uid in statics.items():
            if mirrors.get(key) != uid:
                self.mirrors.pop(key[1], None)
        self.orphans = [key for key in mirrors if key not in statics]
        return pods, True

    # ---- one pass ----
    def sync(self, static: list[tuple[str, dict[str, Any]]], client: Client | None) -> None:
        if not self.pause_checked:
            image = cri.sandbox_image()
            if cri.ensure_pause_image(image, self.endpoint):
                self.log(f'"Imported the pause image" image="{image}"')
            self.pause_checked = True
        wanted, complete = self.desired(static, client)
        sandboxes = self.runtime.list_pod_sandboxes()
        by_uid: dict[str, list[dict[str, Any]]] = {}
        for sb in sandboxes:
            by_uid.setdefault(sb["metadata"]["uid"], []).append(sb)
        for uid, sbs in by_uid.items():
            if uid not in wanted:
                for sb in sbs:
                    if complete or (sb.get("annotations") or {}).get("kubernetes.io/config.source") == "file":
                        self.kill(sb)
        for pod in wanted.values():
            status = self.run(pod, by_uid.get(pod.uid, []), client)
            if client is not None and pod.source == "api" and status is not None:
                self.report(client, pod, status)
            elif client is not None and status is not None:
                self.mirror(client, pod, status)
        if not complete:
            return
        for namespace, name in self.orphans:  # as the kubelet's deleteOrphanedMirrorPods
            with contextlib.suppress(ApiError, OSError):
                client.delete(f"/api/v1/namespaces/{namespace}/pods/{name}")  # type: ignore[union-attr]
                self.log(f'"Deleted mirror pod because it is outdated" pod="{namespace}/{name}"')
            self.mirrors.pop(name, None)
        for uid in [u for u in self.sent if u not in wanted]:
            del self.sent[uid]
        self.pulled = {(uid, name) for uid, name in self.pulled if uid in wanted}
        live = {sb["id"] for sb in sandboxes}
        self.ips = {k: v for k, v in self.ips.items() if k in live}

    def kill(self, sb: dict[str, Any]) -> None:
        md = sb["metadata"]
        self.log(f'"Killing unwanted pod" podName="{md["name"]}" namespace="{md["namespace"]}"')
        for c in self.runtime.list_containers(sb["id"]):
            with contextlib.suppress(cri.CriError):
                self.runtime.stop_container(c["id"], 0)
                self.runtime.remove_container(c["id"])
        with contextlib.suppress(cri.CriError):
            self.runtime.stop_pod_sandbox(sb["id"])
            self.runtime.remove_pod_sandbox(sb["id"])

    def sandbox_config(self, pod: Pod, attempt: int) -> cri.SandboxConfig:
        return cri.SandboxConfig(
            name=pod.name, uid=pod.uid, namespace=pod.namespace, attempt=attempt,
            hostname="" if pod.host_network else pod.name,  # a host-network pod keeps the node's UTS namespace
            host_network=pod.host_network,
            log_directory=f"/var/log/pods/{pod.namespace}_{pod.name}_{pod.uid}",
            labels={"io.kubernetes.pod.name": pod.name, "io.kubernetes.pod.namespace": pod.namespace,
                    "io.kubernetes.pod.uid": pod.uid, **pod.labels},
            annotations={"kubernetes.io/config.source": pod.source, "kubernetes.io/config.seen": now()},
            cgroup_parent=cgroup_parent(self.cgroup_driver, pod.uid),
        )

    def run(self, pod: Pod, sbs: list[dict[str, Any]], client: Client | None) -> dict[str, Any] | None:
        """Make the pod run; return its status for the API server (None when nothing is known yet)."""
        ready = [sb for sb in sbs if sb.get("state") == "SANDBOX_READY"]
        attempt = max((sb["metadata"].get("attempt", 0) for sb in sbs), default=-1) + 1
        if not ready:
            if time.monotonic() - self.last_try.get(pod.uid, -RETRY_SECONDS) < RETRY_SECONDS:
                return self.pending(pod, "ContainerCreating")
            self.last_try[pod.uid] = time.monotonic()
            for sb in sbs:  # a sandbox that died is replaced, as the kubelet does
                self.kill(sb)
            try:
                sandbox_id = self.runtime.run_pod_sandbox(self.sandbox_config(pod, attempt))
            except cri.CriError as exc:
                message = f"Failed to create pod sandbox: {exc}"
                if self.errors.get(pod.uid) != message:
                    self.errors[pod.uid] = message
                    self.log(f'"CreatePodSandbox for pod failed" err="{exc}" pod="{pod.namespace}/{pod.name}"')
                    if client is not None and pod.source == "api":
                        self.event(client, pod, "FailedCreatePodSandBox", message)
                return self.pending(pod, "ContainerCreating")
            self.errors.pop(pod.uid, None)
            self.log(f'"Started pod sandbox" pod="{pod.namespace}/{pod.name}" sandbox="{sandbox_id[:13]}"')
            attempt_config = self.sandbox_config(pod, attempt)
        else:
            sandbox_id = ready[0]["id"]
            attempt_config = self.sandbox_config(pod, ready[0]["metadata"].get("attempt", 0))
        return self.containers(pod, sandbox_id, attempt_config)

    def containers(self, pod: Pod, sandbox_id: str, config: cri.SandboxConfig) -> dict[str, Any]:
        running = {c["metadata"]["name"]: c for c in self.runtime.list_containers(sandbox_id)
                   if c.get("state") == "CONTAINER_RUNNING"}
        statuses = []
        for spec in pod.spec.get("containers") or []:
            name, image = spec.get("name", ""), spec.get("image", "")
            state: dict[str, Any]
            container_id = ""
            if name in running:
                container_id = "containerd://" + running[name]["id"]
                state = {"running": {"startedAt": now()}}
            elif (pod.uid, name) in self.pulled:
                state = {"running": {"startedAt": now()}}
            elif self.runtime.image_status(image) is not None:
                try:
                    cid = self.runtime.create_container(sandbox_id, cri.ContainerConfig(
                        name=name, image=image, command=list(spec.get("command") or []),
                        args=list(spec.get("args") or []),
                        env={e["name"]: str(e.get("value", "")) for e in spec.get("env") or [] if "name" in e},
                        labels={"io.kubernetes.container.name": name, "io.kubernetes.pod.name": pod.name,
                                "io.kubernetes.pod.namespace": pod.namespace, "io.kubernetes.pod.uid": pod.uid},
                        log_path=f"{name}/0.log",
                    ), config)
                    self.runtime.start_container(cid)
                    container_id = "containerd://" + cid
                    state = {"running": {"startedAt": now()}}
                except cri.CriError as exc:
                    state = {"waiting": {"reason": "CreateContainerError", "message": str(exc)}}
            else:
                # No image of it exists here: the stand-in does its work; the pull still has to succeed.
                try:
                    images.pull(image)
                    self.pulled.add((pod.uid, name))
                    state = {"running": {"startedAt": now()}}
                except images.PullError as exc:
                    state = {"waiting": {"reason": "ErrImagePull", "message": str(exc)}}
            statuses.append({
                "name": name, "image": image, "imageID": "", "containerID": container_id,
                "ready": "running" in state, "started": "running" in state, "restartCount": 0, "state": state,
            })
        ip = self.address
        if not pod.host_network:
            if sandbox_id not in self.ips:
                with contextlib.suppress(cri.CriError):
                    self.ips[sandbox_id] = (self.runtime.pod_sandbox_status(sandbox_id).get("network") or {}).get(
                        "ip") or ""
            ip = self.ips.get(sandbox_id, "")
        ready = all(s["ready"] for s in statuses)
        conds = [{"type": t, "status": "True" if (ready or t in ("PodScheduled", "Initialized")) else "False"}
                 for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")]
        status: dict[str, Any] = {
            "phase": "Running", "conditions": conds, "hostIP": self.address, "hostIPs": [{"ip": self.address}],
            "containerStatuses": statuses,
        }
        if ip:
            status["podIP"] = ip
            status["podIPs"] = [{"ip": ip}]
        return status

    def pending(self, pod: Pod, reason: str) -> dict[str, Any]:
        waiting = {"waiting": {"reason": reason}}
        return {
            "phase": "Pending", "hostIP": self.address, "hostIPs": [{"ip": self.address}],
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": c.get("name", ""), "image": c.get("image", ""), "imageID": "",
                                   "ready": False, "started": False, "restartCount": 0, "state": waiting}
                                  for c in pod.spec.get("containers") or []],
        }

    # ---- the API server's view ----
    def mirror(self, client: Client, pod: Pod, status: dict[str, Any]) -> None:
        """A static pod's mirror pod, as the kubelet keeps one: made once the pod runs (named <name>-<node>, with the
        manifest's hash in kubernetes.io/config.mirror, which kubectl drain skips), replaced when the manifest
        changed, and its status reported like any pod's."""
        if self.mirrors.get(pod.name) != pod.uid:
            body = {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": pod.labels,
                             "annotations": {MIRROR: pod.uid, "kubernetes.io/config.hash": pod.uid,
                                             "kubernetes.io/config.source": "file"},
                             "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": self.node,
                                                  "uid": self.node_uid(client), "controller": True}]},
                "spec": {**pod.spec, "nodeName": self.node},
            }
            path = f"/api/v1/namespaces/{pod.namespace}/pods"
            try:
                client.create(path, body)
            except ApiError as exc:
                if exc.code != 409:
                    raise
                existing = client.get(f"{path}/{pod.name}")
                if (existing["metadata"].get("annotations") or {}).get(MIRROR) != pod.uid:
                    client.delete(f"{path}/{pod.name}")
                    client.create(path, body)
            self.mirrors[pod.name] = pod.uid
            self.sent.pop(pod.uid, None)
            self.log(f'"Created mirror pod" pod="{pod.namespace}/{pod.name}"')
        self.report(client, pod, status)

    def node_uid(self, client: Client) -> str:
        with contextlib.suppress(ApiError, OSError, KeyError):
            return str(client.get(f"/api/v1/nodes/{self.node}")["metadata"]["uid"])
        return ""

    def report(self, client: Client, pod: Pod, status: dict[str, Any]) -> None:
        comparable = {k: v for k, v in status.items() if k != "containerStatuses"}
        comparable["containers"] = [(s["name"], s["ready"], s.get("containerID", ""), sorted(s["state"]))
                                    for s in status["containerStatuses"]]
        if self.sent.get(pod.uid) == comparable:
            return
        old = self.sent.get(pod.uid)
        if old and old.get("phase") == "Running":
            status.setdefault("startTime", old.get("startTime"))
        status.setdefault("startTime", now())
        comparable["startTime"] = status["startTime"]
        with contextlib.suppress(ApiError, OSError):
            client.patch(f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}/status", {"status": status})
            self.sent[pod.uid] = comparable

    def event(self, client: Client, pod: Pod, reason: str, message: str) -> None:
        with contextlib.suppress(ApiError, OSError):
            client.create(f"/api/v1/namespaces/{pod.namespace}/events", {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"generateName": f"{pod.name}."},
                "involvedObject": {"kind": "Pod", "name": pod.name, "namespace": pod.namespace, "uid": pod.uid,
                                   "apiVersion": "v1"},
                "reason": reason, "message": message, "type": "Warning", "count": 1,
                "firstTimestamp": now(), "lastTimestamp": now(),
                "source": {"component": "kubelet", "host": self.node},
            })

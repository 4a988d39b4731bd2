"""The CRI client's protobuf codec and calls (with a fake gRPC channel), the pause image archive, crictl's pod and
container commands with a fake runtime, and kubeadm reset's container removal."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import build_repo
import pytest
from conftest import HERE
from kubeboot_standin import cri, crictl
from kubeboot_standin.kubeadm import reset
from pause import archive

SCHEMAS = {name: value for name, value in vars(cri).items()
           if isinstance(value, dict) and value and all(isinstance(f, cri.F) for f in value.values())}


def sample(schema: dict[str, cri.F], depth: int = 0) -> dict[str, Any]:
    """Every field of a schema set to a value that is not its default (nested messages filled in too)."""
    msg: dict[str, Any] = {}
    for i, (name, f) in enumerate(schema.items()):
        if f.kind == cri.MAP:
            value: Any = {f"k{i}": f"v{i}", "app.kubernetes.io/name": "x=y"}
        elif isinstance(f.kind, dict):
            value = sample(f.kind, depth + 1)
        elif isinstance(f.kind, tuple):
            value = f.kind[-1]
        elif f.kind == cri.STRING:
            value = f"{name}-ü-{depth}"
        elif f.kind == cri.BOOL:
            value = True
        elif f.kind == cri.INT:
            value = -(300 + i) if i % 2 else 1_700_000_000_000_000_000 + i
        else:
            value = 2**40 + i
        msg[name] = [value, value] if f.repeated else value
    return msg


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_message_round_trips(name: str) -> None:
    msg = sample(SCHEMAS[name])
    assert cri.decode(SCHEMAS[name], cri.encode(SCHEMAS[name], msg)) == msg


def test_encoding_against_hand_computed_bytes() -> None:
    meta = {"name": "p", "uid": "u", "namespace": "ns", "attempt": 1}
    assert cri.encode(cri.SANDBOX_METADATA, meta) == bytes.fromhex("0a0170" "120175" "1a026e73" "2001")
    config = {"metadata": meta, "labels": {"a": "b"},
              "linux": {"security_context": {"namespace_options": {"network": "NODE", "pid": "CONTAINER"}}}}
    expected = (
        "0a0c" "0a0170120175" "1a026e732001"  # 1: metadata (nested, 12 bytes)
        "3206" "0a0161" "120162"  # 6: labels, one map entry {1: "a", 2: "b"}
        "4208" "1206" "0a04" "0802" "1001"  # 8: linux { 2: security_context { 1: namespace_options {2, 1} } }
    )
    assert cri.encode(cri.SANDBOX_CONFIG, config) == bytes.fromhex(expected)
    # Defaults are left out (proto3); an empty nested message is still sent; negative ints take ten bytes.
    assert cri.encode(cri.SANDBOX_METADATA, {"name": "", "attempt": 0}) == b""
    assert cri.encode(cri.LINUX_SANDBOX_SECURITY, {"namespace_options": {"network": "POD"}}) == b"\x0a\x00"
    assert cri.encode(cri.STOP_CONTAINER_REQUEST, {"timeout": -1}) == b"\x10" + b"\xff" * 9 + b"\x01"


def test_decoding_fills_defaults_and_skips_unknown_fields() -> None:
    data = bytes.fromhex("0a0378797a" "a206" "0568656c6c6f" "1801")  # id "xyz", field 100 (unknown), state 1
    assert cri.decode(cri.POD_SANDBOX, data) == {
        "id": "xyz", "metadata": None, "state": "SANDBOX_NOTREADY", "created_at": 0, "labels": {},
        "annotations": {}, "runtime_handler": ""}


class FakeRpcError(Exception):
    def __init__(self, number: int, name: str, details: str) -> None:
        super().__init__(details)
        self._code = type("Code", (), {"value": (number, name)})()
        self._details = details

    def code(self) -> Any:
        return self._code

    def details(self) -> str:
        return self._details


class FakeChannel:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.sent: list[tuple[str, bytes]] = []
        self.closed = False

    def unary_unary(self, method: str, request_serializer: Any, response_deserializer: Any) -> Any:
        def call(request: bytes, timeout: float) -> bytes:
            self.sent.append((method, request_serializer(request)))
            answer = self.answers[method]
            if isinstance(answer, Exception):
                raise answer
            return bytes(response_deserializer(answer))
        return call

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def channel(monkeypatch: pytest.MonkeyPatch) -> FakeChannel:
    fake = FakeChannel({})
    grpc = argparse.Namespace(RpcError=FakeRpcError, insecure_channel=lambda target: fake)
    monkeypatch.setattr(cri, "_grpc", lambda: grpc)
    return fake


def test_runtime_calls_and_answers(channel: FakeChannel) -> None:
    r = "/runtime.v1.RuntimeService/"
    status = {"id": "abc", "metadata": {"name": "web", "uid": "u", "namespace": "default", "attempt": 2},
              "state": "SANDBOX_READY", "created_at": 5, "network": {"ip": "10.244.1.5",
                                                                     "additional_ips": [{"ip": "fd00::5"}]},
              "labels": {"a": "b"}}
    channel.answers = {
        r + "RunPodSandbox": cri.encode(cri.RUN_SANDBOX_RESPONSE, {"pod_sandbox_id": "abc"}),
        r + "PodSandboxStatus": cri.encode(cri.SANDBOX_STATUS_RESPONSE, {
            "status": status, "info": {"info": '{"pid": 42, "runtimeSpec": {"linux": {}}}', "plain": "text"}}),
        r + "ListContainers": cri.encode(cri.LIST_CONTAINERS_RESPONSE, {"containers": [
            {"id": "c1", "pod_sandbox_id": "abc", "metadata": {"name": "app"}, "image": {"image": "sha256:1234"},
             "state": "CONTAINER_EXITED"}]}),
        "/runtime.v1.ImageService/ImageStatus": cri.encode(cri.IMAGE_STATUS_RESPONSE, {}),
        r + "StopPodSandbox": FakeRpcError(
            2, "unknown", 'failed to destroy network for sandbox "abc": plugin type="bridge" failed (delete)'),
    }
    rt = cri.Runtime("unix:///run/containerd/containerd.sock")
    pod = cri.SandboxConfig(name="web", uid="u", namespace="default", host_network=True, cgroup_parent="kubepods",
                            port_mappings=[{"protocol": "udp", "container_port": 53, "host_port": 5353}])
    assert rt.run_pod_sandbox(pod, runtime_handler="runc") == "abc"
    method, sent = channel.sent[-1]
    request = cri.decode(cri.RUN_SANDBOX_REQUEST, sent)
    assert method == r + "RunPodSandbox" and request["runtime_handler"] == "runc"
    linux = request["config"]["linux"]
    assert linux["cgroup_parent"] == "kubepods"
    assert linux["security_context"]["namespace_options"]["network"] == "NODE"
    assert linux["security_context"]["namespace_options"]["pid"] == "CONTAINER"
    assert request["config"]["port_mappings"][0]["protocol"] == "UDP"

    got = rt.pod_sandbox_status("abc", verbose=True)
    assert cri.decode(cri.SANDBOX_STATUS_REQUEST, channel.sent[-1][1]) == {"pod_sandbox_id": "abc", "verbose": True}
    assert got["network"] == {"ip": "10.244.1.5", "additional_ips": ["fd00::5"]}
    assert got["info"] == {"info": {"pid": 42, "runtimeSpec": {"linux": {}}}, "plain": "text"}
    assert got["metadata"]["attempt"] == 2 and got["state"] == "SANDBOX_READY"

    assert rt.list_containers("abc") == [{
        "id": "c1", "pod_sandbox_id": "abc", "metadata": {"name": "app", "attempt": 0}, "image": "sha256:1234",
        "image_ref": "", "state": "CONTAINER_EXITED", "created_at": 0, "labels": {}, "annotations": {}}]
    assert cri.decode(cri.LIST_CONTAINERS_REQUEST, channel.sent[-1][1])["filter"]["pod_sandbox_id"] == "abc"
    assert rt.image_status("registry.k8s.io/pause:3.10") is None

    with pytest.raises(cri.CriError) as err:
        rt.stop_pod_sandbox("abc")
    assert err.value.code == "Unknown"
    assert str(err.value) == ('rpc error: code = Unknown desc = failed to destroy network for sandbox "abc": '
                              'plugin type="bridge" failed (delete)')
    rt.close()
    assert channel.closed


def test_container_config_shares_the_pods_namespaces(channel: FakeChannel) -> None:
    channel.answers = {"/runtime.v1.RuntimeService/CreateContainer":
                       cri.encode(cri.CONTAINER_ID_REQUEST, {"container_id": "c9"})}
    pod = cri.SandboxConfig(name="web", uid="u", namespace="default")
    ctr = cri.ContainerConfig(name="app", image="registry.k8s.io/pause:3.10", command=["/pause"], env={"A": "1"},
                              log_path="app/0.log")
    assert cri.Runtime().create_container("abc", ctr, pod) == "c9"
    request = cri.decode(cri.CREATE_CONTAINER_REQUEST, channel.sent[-1][1])
    assert request["config"]["envs"] == [{"key": "A", "value": "1"}]
    assert request["config"]["image"]["image"] == "registry.k8s.io/pause:3.10"
    assert request["config"]["linux"]["security_context"]["namespace_options"]["network"] == "POD"
    assert request["sandbox_config"]["metadata"]["name"] == "web"


def test_without_grpc_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "grpc", None)
    with pytest.raises(cri.GrpcMissing, match="python3-grpcio"):
        cri.Runtime()
    assert not cri.available()


def test_sandbox_image_from_containerds_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEBOOT_STANDIN_ROOT", str(tmp_path))
    assert cri.sandbox_image() == "registry.k8s.io/pause:3.6"
    conf = tmp_path / "etc/containerd/config.toml"
    conf.parent.mkdir(parents=True)
    conf.write_text('version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n'
                    '  sandbox_image = "mirror.example/pause:3.10"\n')
    assert cri.sandbox_image() == "mirror.example/pause:3.10"


# --- the pause image -------------------------------------------------------------------------------------------

def members(data: bytes) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: (m, tar.extractfile(m).read()) for m in tar.getmembers()}  # type: ignore[union-attr]


def test_docker_archive_digests_agree() -> None:
    binary = b"\x7fELF not really"
    data = archive.docker_archive(binary)
    files = members(data)
    manifest = json.loads(files["manifest.json"][1])
    assert manifest[0]["RepoTags"] == [archive.IMPORT_NAME] == [cri.archive_name(data)]
    config_name = manifest[0]["Config"]
    config = files[config_name][1]
    assert config_name == hashlib.sha256(config).hexdigest() + ".json"
    (layer_name,) = manifest[0]["Layers"]
    layer = files[layer_name][1]
    assert layer_name == hashlib.sha256(layer).hexdigest() + "/layer.tar"
    parsed = json.loads(config)
    assert parsed["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    assert parsed["config"]["Entrypoint"] == ["/pause"] and parsed["os"] == "linux"
    pause, content = members(layer)["pause"]
    assert pause.isfile() and pause.mode == 0o755 and content == binary
    assert archive.docker_archive(binary) == data  # deterministic


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_pause_binary_exits_0_on_sigterm(tmp_path: Path) -> None:
    archive.build(tmp_path / "pause.tar")
    layer = next(c for n, (_, c) in members((tmp_path / "pause.tar").read_bytes()).items() if n.endswith("layer.tar"))
    binary = tmp_path / "pause"
    binary.write_bytes(members(layer)["pause"][1])
    binary.chmod(0o755)
    described = subprocess.run(["file", str(binary)], capture_output=True, text=True, check=False).stdout
    assert "statically linked" in described
    proc = subprocess.Popen([str(binary)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=0.3)
    proc.terminate()
    out, err = proc.communicate(timeout=5)
    assert (proc.returncode, out, err) == (0, b"", b"")


def test_the_kubelet_zipapp_carries_the_pause_image(tmp_path: Path) -> None:
    tar = tmp_path / "pause.tar"
    tar.write_bytes(archive.docker_archive(b"binary"))
    app = tmp_path / "kubelet"
    build_repo.make_zipapp(app, "kubeboot_standin.kubelet", "main", {build_repo.PAUSE_DATA: tar})
    code = f"import sys; sys.path.insert(0, {str(app)!r}); from kubeboot_standin import cri; " \
           "print(cri.archive_name(cri.packaged_pause_image()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.strip() == archive.IMPORT_NAME
    assert "python3-grpcio" in build_repo.GRPC_DEPS


# --- crictl ----------------------------------------------------------------------------------------------------

NOW = 1_800_000_000.0
POD_A = "a" * 64
POD_B = "b1" * 32


class FakeRuntime(crictl.NoRuntime):
    def __init__(self) -> None:
        self.pods = {
            POD_A: {"id": POD_A, "metadata": {"name": "kube-proxy-x", "uid": "u1", "namespace": "kube-system",
                                              "attempt": 0}, "state": "SANDBOX_READY",
                    "created_at": int((NOW - 130) * 1e9), "labels": {"k8s-app": "kube-proxy"}, "annotations": {},
                    "runtime_handler": ""},
            POD_B: {"id": POD_B, "metadata": {"name": "web", "uid": "u2", "namespace": "default", "attempt": 1},
                    "state": "SANDBOX_NOTREADY", "created_at": int((NOW - 3 * 86400) * 1e9), "labels": {},
                    "annotations": {}, "runtime_handler": "runc"},
        }
        self.containers = {
            "c" * 64: {"id": "c" * 64, "pod_sandbox_id": POD_A, "metadata": {"name": "kube-proxy", "attempt": 3},
                       "image": "sha256:" + "d" * 64, "image_ref": "", "state": "CONTAINER_RUNNING",
                       "created_at": int((NOW - 5) * 1e9), "labels": {"io.kubernetes.pod.name": "kube-proxy-x"},
                       "annotations": {}},
            "e" * 64: {"id": "e" * 64, "pod_sandbox_id": POD_B, "metadata": {"name": "app", "attempt": 0},
                       "image": "registry.k8s.io/pause:3.10", "image_ref": "", "state": "CONTAINER_EXITED",
                       "created_at": int((NOW - 7200) * 1e9), "labels": {}, "annotations": {}},
        }
        self.calls: list[str] = []

    def list_pod_sandboxes(self) -> list[dict[str, Any]]:
        return list(self.pods.values())

    def list_containers(self, sandbox_id: str = "") -> list[dict[str, Any]]:
        return [c for c in self.containers.values() if not sandbox_id or c["pod_sandbox_id"] == sandbox_id]

    def _pod(self, ident: str) -> dict[str, Any]:
        found = [p for i, p in self.pods.items() if i.startswith(ident)]
        if not found:
            raise self._missing("sandbox", ident)
        return found[0]

    def pod_sandbox_status(self, sandbox_id: str, verbose: bool = False) -> dict[str, Any]:
        pod = self._pod(sandbox_id)
        return {**pod, "network": {"ip": "10.244.1.7", "additional_ips": []},
                "info": {"info": {"pid": 77}} if verbose else {}}

    def stop_pod_sandbox(self, sandbox_id: str) -> None:
        self._pod(sandbox_id)["state"] = "SANDBOX_NOTREADY"
        self.calls.append(f"stopp {sandbox_id}")

    def remove_pod_sandbox(self, sandbox_id: str) -> None:
        del self.pods[self._pod(sandbox_id)["id"]]
        self.calls.append(f"rmp {sandbox_id}")

    def container_status(self, container_id: str) -> dict[str, Any]:
        return self.containers[container_id]

    def stop_container(self, container_id: str, timeout: int = 0) -> None:
        self.containers[container_id]["state"] = "CONTAINER_EXITED"
        self.calls.append(f"stop {container_id}")

    def remove_container(self, container_id: str) -> None:
        del self.containers[container_id]
        self.calls.append(f"rm {container_id}")


def test_pods_table(capsys: pytest.CaptureFixture[str]) -> None:
    crictl.cmd_pods([], FakeRuntime(), now=NOW)
    assert capsys.readouterr().out == (
        "POD ID              CREATED             STATE               NAME                NAMESPACE           "
        "ATTEMPT             RUNTIME\n"
        "aaaaaaaaaaaaa       2 minutes ago       Ready               kube-proxy-x        kube-system         "
        "0                   (default)\n"
        "b1b1b1b1b1b1b       3 days ago          NotReady            web                 default             "
        "1                   runc\n"
    )
    crictl.cmd_pods(["-q", "--state", "Ready"], FakeRuntime(), now=NOW)
    assert capsys.readouterr().out == f"{POD_A}\n"
    crictl.cmd_pods(["-q", "--namespace", "default"], FakeRuntime(), now=NOW)
    assert capsys.readouterr().out == f"{POD_B}\n"
    crictl.cmd_pods(["-o", "json", "--name", "^web$"], FakeRuntime(), now=NOW)
    item = json.loads(capsys.readouterr().out)["items"][0]
    assert item["id"] == POD_B and item["runtimeHandler"] == "runc" and isinstance(item["createdAt"], str)


def test_ps_table(capsys: pytest.CaptureFixture[str]) -> None:
    crictl.cmd_ps([], FakeRuntime(), now=NOW)
    assert capsys.readouterr().out == (
        "CONTAINER           IMAGE               CREATED             STATE               NAME                "
        "ATTEMPT             POD ID              POD\n"
        "ccccccccccccc       ddddddddddddd       5 seconds ago       Running             kube-proxy          "
        "3                   aaaaaaaaaaaaa       kube-proxy-x\n"
    )
    crictl.cmd_ps(["-a", "-q"], FakeRuntime(), now=NOW)
    assert capsys.readouterr().out == f"{'c' * 64}\n{'e' * 64}\n"
    crictl.cmd_ps(["-a", "--pod", "b1b1"], FakeRuntime(), now=NOW)
    assert "registry.k8s.io/pause:3.10   2 hours ago         Exited" in capsys.readouterr().out
    crictl.cmd_ps(["-a", "-o", "json"], FakeRuntime(), now=NOW)
    assert [c["podSandboxId"] for c in json.loads(capsys.readouterr().out)["containers"]] == [POD_A, POD_B]


def test_inspectp_stopp_rmp_stop_rm(capsys: pytest.CaptureFixture[str]) -> None:
    rt = FakeRuntime()
    crictl.cmd_inspectp([POD_A[:6]], rt)
    doc = json.loads(capsys.readouterr().out)
    assert list(doc) == ["status", "info"] and doc["info"] == {"pid": 77}
    assert doc["status"]["network"] == {"additionalIps": [], "ip": "10.244.1.7"}
    assert doc["status"]["metadata"]["namespace"] == "kube-system"
    with pytest.raises(crictl.Fatal, match="is running, please stop it first"):
        crictl.cmd_rmp([POD_A], rt)
    crictl.cmd_stopp([POD_A], rt)
    assert capsys.readouterr().out == f"Stopped sandbox {POD_A}\n"
    crictl.cmd_rm(["-a", "-f"], rt)
    assert capsys.readouterr().out == f"{'c' * 64}\n{'e' * 64}\n"
    crictl.cmd_rmp(["-a", "-f"], rt)
    assert capsys.readouterr().out == f"Removed sandbox {POD_A}\nRemoved sandbox {POD_B}\n"
    assert not rt.pods and not rt.containers
    with pytest.raises(crictl.Fatal, match="NotFound"):
        crictl.cmd_rmp(["nope"], rt)
    crictl.cmd_rm([], rt)
    assert capsys.readouterr().out.startswith("NAME:\n   crictl rm - Remove one or more containers\n")


def test_human_duration() -> None:
    cases = {0.5: "Less than a second", 1: "1 second", 59: "59 seconds", 61: "About a minute", 600: "10 minutes",
             3600: "About an hour", 5 * 3600: "5 hours", 3 * 86400: "3 days", 20 * 86400: "2 weeks",
             100 * 86400: "3 months", 800 * 86400: "2 years"}
    assert {s: crictl.human_duration(s) for s in cases} == cases


def test_no_runtime_under_a_test_root(tmp_path: Path) -> None:
    env = {"KUBEBOOT_STANDIN_ROOT": str(tmp_path), "PATH": "/usr/bin:/bin"}
    sock = tmp_path / "run/containerd/containerd.sock"
    sock.parent.mkdir(parents=True)
    import socket as socketlib
    with socketlib.socket(socketlib.AF_UNIX) as server:
        server.bind(str(sock))
        server.listen()
        run = [sys.executable, "-c", "import sys; from kubeboot_standin import crictl; sys.exit(crictl.main())"]
        pods = subprocess.run([*run, "pods"], cwd=HERE, env=env, capture_output=True, text=True, check=False)
        rmp = subprocess.run([*run, "rmp", "-a", "-f"], cwd=HERE, env=env, capture_output=True, text=True, check=False)
    assert (pods.returncode, pods.stdout.split()) == (0, ["POD", "ID", "CREATED", "STATE", "NAME", "NAMESPACE",
                                                          "ATTEMPT", "RUNTIME"])
    assert rmp.returncode == 0 and "No pods to remove" in rmp.stderr


# --- kubeadm reset ---------------------------------------------------------------------------------------------

def test_reset_removes_containers_then_pods(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    rt = FakeRuntime()
    rt.close = lambda: None  # type: ignore[method-assign]
    monkeypatch.setattr(reset.paths, "root", lambda: Path("/"))
    monkeypatch.setattr(reset.cri, "available", lambda: True)
    monkeypatch.setattr(reset, "cri_answers", lambda socket: None)
    monkeypatch.setattr(reset.cri, "Runtime", lambda socket, timeout: _Ctx(rt))
    reset.remove_containers("unix:///run/containerd/containerd.sock")
    assert [c.split()[0] for c in rt.calls] == ["stop", "rm", "stop", "rm", "stopp", "rmp", "stopp", "rmp"]
    assert capsys.readouterr() == ("", "")


def test_reset_skips_quietly_under_a_test_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KUBEBOOT_STANDIN_ROOT", str(tmp_path))
    monkeypatch.setattr(reset.cri, "Runtime", None)
    reset.remove_containers("unix:///run/containerd/containerd.sock")
    assert capsys.readouterr() == ("", "")
    flags = tmp_path / "var/lib/kubelet/kubeadm-flags.env"
    flags.parent.mkdir(parents=True)
    flags.write_text('KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///run/crio/crio.sock --v=2"\n')
    assert reset.cri_socket(argparse.Namespace(cri_socket=None)) == "unix:///run/crio/crio.sock"
    assert reset.cri_socket(argparse.Namespace(cri_socket="unix:///x.sock")) == "unix:///x.sock"


class _Ctx:
    def __init__(self, rt: FakeRuntime) -> None:
        self.rt = rt

    def __enter__(self) -> FakeRuntime:
        return self.rt

    def __exit__(self, *_: object) -> None:
        pass

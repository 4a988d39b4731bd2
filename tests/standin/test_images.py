"""The stand-in's images: crictl pull/inspecti/images/rmi on the node's image store, reachable and unreachable
registries (with containerd's hosts.toml mirrors), and kubeadm pulling what it needs."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import NODE_PYTHON, free_port
from nodesim import Node

PAUSE = "registry.k8s.io/pause:3.10"
UNREACHABLE = "registry.invalid"
NAMESERVER = "10.9.8.7"
SOCKET = "/var/run/containerd/containerd.sock"  # where the simulated node's containerd listens


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path, "n1")
    resolv = n.root / "etc/resolv.conf"
    resolv.parent.mkdir(parents=True, exist_ok=True)
    resolv.write_text(f"# test node\nnameserver {NAMESERVER}\n")
    (n.root / "etc/crictl.yaml").write_text(f"runtime-endpoint: unix://{SOCKET}\n")
    try:
        yield n
    finally:
        n.stop()


def crictl(n: Node, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NODE_PYTHON, "-m", "kubeboot_standin.crictl", *args],
        env=n.env(), capture_output=True, text=True, timeout=60, check=False,
    )


def reachable(n: Node, *hosts: str) -> None:
    f = n.root / "etc/kubeboot-standin/registries"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text("# registries this node reaches\n" + "".join(f"{h}\n" for h in hosts))


def ids(n: Node) -> list[str]:
    out = crictl(n, "images", "-q")
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def fatal(out: subprocess.CompletedProcess[str]) -> str:
    """crictl's last stderr line, logrus without a terminal: time="..." level=fatal msg="..."."""
    assert out.returncode == 1, out.stdout + out.stderr
    last = out.stderr.strip().splitlines()[-1]
    match = re.fullmatch(r'time="[0-9T:+Z-]+" level=fatal msg=(".*")', last)
    assert match, last
    return str(json.loads(match[1]))


def test_pull_then_inspect_list_and_remove(node: Node) -> None:
    assert ids(node) == []
    missing = crictl(node, "inspecti", "-q", PAUSE)
    assert fatal(missing) == f'no such image "{PAUSE}" present'

    pulled = crictl(node, "pull", PAUSE)
    assert pulled.returncode == 0, pulled.stderr
    image_id = pulled.stdout.strip().removeprefix("Image is up to date for ")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id), pulled.stdout

    quiet = crictl(node, "inspecti", "-q", PAUSE)
    assert quiet.returncode == 0, quiet.stderr
    status = json.loads(quiet.stdout)
    assert set(status) == {"status"}
    assert status["status"]["id"] == image_id
    assert status["status"]["repoTags"] == [PAUSE]
    assert status["status"]["repoDigests"][0].startswith("registry.k8s.io/pause@sha256:")
    assert int(status["status"]["size"]) > 0
    verbose = json.loads(crictl(node, "inspecti", PAUSE).stdout)
    assert set(verbose) == {"status", "info"} and verbose["info"]["imageSpec"]["os"] == "linux"
    # by full or shortened ID, as containerd resolves it
    assert crictl(node, "inspecti", "-q", image_id).returncode == 0
    assert crictl(node, "inspecti", "-q", image_id[7:20]).returncode == 0

    table = crictl(node, "images").stdout.splitlines()
    assert re.split(r"\s{3,}", table[0]) == ["IMAGE", "TAG", "IMAGE ID", "SIZE"]
    assert re.split(r"\s{3,}", table[1])[:3] == ["registry.k8s.io/pause", "3.10", image_id[7:20]]
    assert table[0].index("TAG") == table[1].index("3.10")  # columns aligned as Go's tabwriter does
    assert ids(node) == [image_id]

    again = crictl(node, "pull", PAUSE)
    assert again.stdout == pulled.stdout and ids(node) == [image_id]

    removed = crictl(node, "rmi", PAUSE)
    assert removed.returncode == 0 and removed.stdout == f"Deleted: {PAUSE}\n"
    assert ids(node) == []
    gone = crictl(node, "rmi", PAUSE)
    assert fatal(gone) == "unable to remove the image(s)"
    assert f'level=error msg="no such image {PAUSE}"' in gone.stderr


def test_pull_from_a_registry_that_cannot_be_reached_fails_like_containerd(node: Node) -> None:
    ref = f"{UNREACHABLE}/kube-apiserver:v1.33.1"
    out = crictl(node, "pull", ref)
    assert fatal(out) == (
        f'pulling image: rpc error: code = Unknown desc = failed to pull and unpack image "{ref}": failed to resolve '
        f'reference "{ref}": failed to do request: Head "https://{UNREACHABLE}/v2/kube-apiserver/manifests/v1.33.1": '
        f"dial tcp: lookup {UNREACHABLE} on {NAMESERVER}:53: no such host"
    )
    assert '"PullImage from image service failed"' in out.stderr.splitlines()[0]
    assert ids(node) == []
    # an address instead of a name: nothing listens there
    out = crictl(node, "pull", "10.9.8.6:5000/k8s/pause:3.10")
    assert fatal(out).endswith(
        'Head "https://10.9.8.6:5000/v2/k8s/pause/manifests/3.10": dial tcp 10.9.8.6:5000: connect: connection refused'
    )
    out = crictl(node, "pull", "Registry.k8s.io/Pause")
    assert "code = InvalidArgument" in fatal(out) and "invalid reference format" in fatal(out)
    assert ids(node) == []


def test_registries_file_declares_what_the_node_reaches(node: Node) -> None:
    # an air-gapped site: only its mirror answers
    reachable(node, "mirror.example:5000")
    assert "lookup registry.k8s.io on" in fatal(crictl(node, "pull", PAUSE))
    mirrored = crictl(node, "pull", "mirror.example:5000/k8s/pause:3.10")
    assert mirrored.returncode == 0, mirrored.stderr
    # the same image by two names is one image with two tags
    reachable(node, "mirror.example:5000", "registry.k8s.io")
    assert crictl(node, "pull", PAUSE).stdout == mirrored.stdout
    assert len(ids(node)) == 1
    rows = crictl(node, "images").stdout.splitlines()[1:]
    assert [r.split()[:2] for r in rows] == [
        ["mirror.example:5000/k8s/pause", "3.10"],
        ["registry.k8s.io/pause", "3.10"],
    ]
    # short names are docker.io's
    reachable(node, "registry-1.docker.io")
    assert crictl(node, "pull", "busybox").returncode == 0
    status = json.loads(crictl(node, "inspecti", "-q", "busybox").stdout)["status"]
    assert status["repoTags"] == ["docker.io/library/busybox:latest"]


def test_containerd_mirrors_from_hosts_toml_are_tried_first(node: Node) -> None:
    reachable(node, "mirror.example:5000")
    hosts = node.root / "etc/containerd/certs.d/registry.k8s.io/hosts.toml"
    hosts.parent.mkdir(parents=True)
    hosts.write_text(
        'server = "https://registry.k8s.io"\n\n[host."https://down.example"]\n  capabilities = ["pull", "resolve"]\n'
        '\n[host."https://mirror.example:5000"]\n  capabilities = ["pull", "resolve"]\n'
    )
    out = crictl(node, "pull", PAUSE)
    assert out.returncode == 0, out.stderr
    assert json.loads(crictl(node, "inspecti", "-q", PAUSE).stdout)["status"]["repoTags"] == [PAUSE]
    # none answering: containerd reports the first host it tried, with the namespace of the registry
    reachable(node, "elsewhere.example")
    assert fatal(crictl(node, "pull", "registry.k8s.io/etcd:3.5.21-0")).endswith(
        'Head "https://down.example/v2/etcd/manifests/3.5.21-0?ns=registry.k8s.io": '
        f"dial tcp: lookup down.example on {NAMESERVER}:53: no such host"
    )


def test_image_commands_need_the_runtime(node: Node) -> None:
    assert node.containerd is not None
    node.containerd.stop()
    node.containerd = None
    out = crictl(node, "--runtime-endpoint", f"unix://{SOCKET}", "pull", PAUSE)
    assert fatal(out).startswith(f'validate service connection: validate CRI v1 image API for endpoint "unix://{SOCKET}"')


def test_kubeadm_config_images_pull_pulls_the_listed_images(node: Node) -> None:
    listed = node.kubeadm("config", "images", "list").stdout.split()
    out = node.kubeadm("config", "images", "pull")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"[config/images] Pulled {i}" for i in listed]
    for image in listed:
        assert crictl(node, "inspecti", "-q", image).returncode == 0, image
    out = node.kubeadm("config", "images", "pull", "--image-repository", UNREACHABLE)
    assert out.returncode == 1
    first = f"{UNREACHABLE}/kube-apiserver:v1.33.1"
    assert out.stderr.startswith(
        f'failed to pull image "{first}": failed to pull image {first}: rpc error: code = Unknown desc = '
        f'failed to pull and unpack image "{first}"'
    )
    assert len(ids(node)) == len(listed)


def test_kubeadm_init_preflight_pulls_the_images_or_reports_imagepull(node: Node) -> None:
    port = ["--apiserver-bind-port", str(free_port())]
    failed = node.kubeadm("init", "phase", "preflight", "--image-repository", UNREACHABLE, *port)
    assert failed.returncode == 1
    assert "[preflight] Pulling images required for setting up a Kubernetes cluster" in failed.stdout
    errors = [line.strip() for line in failed.stderr.splitlines() if "[ERROR ImagePull]" in line]
    assert len(errors) == 7
    first = f"{UNREACHABLE}/kube-apiserver:v1.33.1"
    assert errors[0].startswith(
        f"[ERROR ImagePull]: failed to pull image {first}: failed to pull image {first}: rpc error: code = Unknown"
    )
    assert ids(node) == []
    ignored = node.kubeadm("init", "phase", "preflight", "--image-repository", UNREACHABLE, *port,
                           "--ignore-preflight-errors=ImagePull")
    assert ignored.returncode == 0, ignored.stderr
    assert ignored.stderr.count("[WARNING ImagePull]") == 7

    ok = node.kubeadm("init", "phase", "preflight", *port)
    assert ok.returncode == 0, ok.stderr
    listed = node.kubeadm("config", "images", "list").stdout.split()
    for image in listed:
        assert crictl(node, "inspecti", "-q", image).returncode == 0, image
    # present images are not pulled again: with the registry gone, preflight still passes
    reachable(node)
    again = node.kubeadm("init", "phase", "preflight", *port)
    assert again.returncode == 0, again.stderr

"""The stand-in's pause image: pause.c compiled statically and packed as a docker-archive tar (`docker save`
layout) that `ctr -n k8s.io images import` accepts. Stdlib only; deterministic (same binary, same digests).

    python3 tests/standin/pause/archive.py OUT.tar     (compiles pause.c with the host's gcc, then packs it)
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "pause.c"
# The name the archive carries; ensure_pause_image tags it as the sandbox image containerd is configured with.
IMPORT_NAME = "kubeboot.invalid/standin/pause:latest"


class BuildError(Exception):
    pass


def compile_pause(out: Path, source: Path = SOURCE) -> Path:
    """`gcc -Os -static -s`: a static binary needs nothing from the image (it has no libc)."""
    if shutil.which("gcc") is None:
        raise BuildError("gcc is needed to build the pause image; install with: apt-get install -y gcc libc6-dev")
    cp = subprocess.run(["gcc", "-Os", "-static", "-s", "-o", str(out), str(source)], capture_output=True,
                        text=True, check=False)
    if cp.returncode != 0:
        raise BuildError(f"compiling {source.name} failed (a static build needs libc6-dev): {cp.stderr.strip()}")
    return out


def _member(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def layer_tar(binary: bytes) -> bytes:
    """The one layer: /pause, mode 0755."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        _member(tar, "pause", binary, 0o755)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def image_config(diff_id: str) -> bytes:
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Entrypoint": ["/pause"], "WorkingDir": "/", "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "kubeboot stand-in pause (pause.c)"}],
    }
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def docker_archive(binary: bytes, tag: str = IMPORT_NAME) -> bytes:
    """manifest.json, <sha256 of config>.json, <sha256 of layer>/layer.tar (plus the legacy `repositories`)."""
    layer = layer_tar(binary)
    layer_id = sha256(layer)
    config = image_config(layer_id)
    config_name = f"{sha256(config)}.json"
    repo, _, version = tag.rpartition(":")
    manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": [f"{layer_id}/layer.tar"]}]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        _member(tar, config_name, config, 0o644)
        _member(tar, f"{layer_id}/layer.tar", layer, 0o644)
        _member(tar, "manifest.json", json.dumps(manifest).encode(), 0o644)
        _member(tar, "repositories", json.dumps({repo: {version: layer_id}}).encode(), 0o644)
    return buf.getvalue()


def build(out: Path, source: Path = SOURCE) -> Path:
    """Compile the pause binary and write the docker-archive tar to out."""
    with tempfile.TemporaryDirectory() as d:
        binary = compile_pause(Path(d) / "pause", source).read_bytes()
    out.write_bytes(docker_archive(binary))
    return out


if __name__ == "__main__":
    try:
        print(build(Path(sys.argv[1])))
    except BuildError as exc:
        raise SystemExit(f"pause: {exc}") from None

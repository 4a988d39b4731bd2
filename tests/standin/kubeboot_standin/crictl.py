"""crictl stand-in (cri-tools): answers from the configured runtime socket, lists nothing.

Real crictl speaks CRI gRPC; the roles only use it to ask whether the runtime answers and to
list or remove pods, so this reports the runtime version when its socket accepts connections.
"""

from __future__ import annotations

import sys

import yaml

from . import paths
from .kubeadm.preflight import cri_answers

DEFAULT = "unix:///run/containerd/containerd.sock"


def endpoint(argv: list[str]) -> str:
    for i, a in enumerate(argv):
        if a.startswith(("--runtime-endpoint=", "-r=")):
            return a.split("=", 1)[1]
        if a in ("--runtime-endpoint", "-r") and i + 1 < len(argv):
            return argv[i + 1]
    try:
        cfg = yaml.safe_load(paths.host("/etc/crictl.yaml").read_text()) or {}
        return str(cfg.get("runtime-endpoint") or DEFAULT)
    except OSError:
        return DEFAULT


def main() -> int:
    argv = sys.argv[1:]
    words = [a for a in argv if not a.startswith("-")]
    cmd = words[0] if words else "help"
    ep = endpoint(argv)
    if cmd in ("--version", "-v") or "--version" in argv:
        print("crictl version v1.33.0")
        return 0
    err = cri_answers(ep)
    if err is not None and cmd not in ("help", "config"):
        print(
            f'time="" level=fatal msg="validate service connection: validate CRI v1 runtime API for endpoint \\"{ep}'
            f'\\": rpc error: code = Unavailable desc = connection error"',
            file=sys.stderr,
        )
        return 1
    if cmd == "version":
        print("Version:  0.1.0\nRuntimeName:  containerd\nRuntimeVersion:  1.6.20\nRuntimeApiVersion:  v1")
    elif cmd == "info":
        print(
            '{"status": {"conditions": [{"type": "RuntimeReady", "status": true}, '
            '{"type": "NetworkReady", "status": true}]}}'
        )
    elif cmd == "ps":
        print(
            "CONTAINER           IMAGE               CREATED             STATE               NAME                "
            "ATTEMPT             POD ID              POD"
        )
    elif cmd == "pods":
        print(
            "POD ID              CREATED             STATE               NAME                NAMESPACE           "
            "ATTEMPT             RUNTIME"
        )
    elif cmd == "images":
        print("IMAGE               TAG                 IMAGE ID            SIZE")
    return 0


if __name__ == "__main__":
    sys.exit(main())

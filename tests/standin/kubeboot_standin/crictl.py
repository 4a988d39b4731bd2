"""crictl stand-in (cri-tools 1.33): answers from the configured runtime socket.

Real crictl speaks CRI gRPC. The roles ask whether the runtime answers (`info`, `version`), list or remove pods, and
pull images ahead (`pull`, `inspecti`, `images`, `rmi`): those work on the node's image store (images.py), with
crictl's output and exit codes. Pods and containers (`pods`, `ps`, `inspectp`, `stopp`, `rmp`, `stop`, `rm`) are
the runtime's own, over CRI (cri.py); under a test root, or without python3-grpcio, there are none. Errors go
to stderr as logrus writes them without a terminal (`time="..." level=fatal msg="..."`) and exit 1.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

import yaml

from . import cri, images, paths, tabwriter
from .kubeadm.preflight import cri_answers

DEFAULT = "unix:///run/containerd/containerd.sock"
# Global options that take a value (urfave/cli: they come before the command).
GLOBAL_VALUE = {"--runtime-endpoint": "r", "-r": "r", "--image-endpoint": "i", "-i": "i", "--timeout": "t",
                "-t": "t", "--config": "c", "-c": "c"}
IMAGE_COMMANDS = {"images", "image", "img", "pull", "inspecti", "rmi", "imagefsinfo"}
TRUNCATED_ID = 13  # crictl's truncatedIDLen
POD_STATES = {"SANDBOX_READY": "Ready", "SANDBOX_NOTREADY": "NotReady"}
CONTAINER_STATES = {"CONTAINER_CREATED": "Created", "CONTAINER_RUNNING": "Running", "CONTAINER_EXITED": "Exited",
                    "CONTAINER_UNKNOWN": "Unknown"}


class Fatal(Exception):
    pass


def log(level: str, msg: str) -> None:
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds").replace("+00:00", "Z")
    print(f"time={json.dumps(now)} level={level} msg={json.dumps(msg, ensure_ascii=False)}", file=sys.stderr)


def split_globals(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """Global options (before the command) and the command with its own arguments."""
    opts: dict[str, str] = {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if not a.startswith("-"):
            break
        name, eq, value = a.partition("=")
        if name in GLOBAL_VALUE:
            if not eq:
                i += 1
                value = argv[i] if i < len(argv) else ""
            opts[GLOBAL_VALUE[name]] = value
        elif name in ("--version", "-v"):
            opts["version"] = "1"
        elif name in ("--help", "-h"):
            opts["help"] = "1"
        i += 1
    return opts, argv[i:]


def endpoints(opts: dict[str, str]) -> tuple[str, str]:
    """The runtime and image endpoints: flags, then /etc/crictl.yaml (or --config), then containerd's socket."""
    try:
        cfg = yaml.safe_load(paths.host(opts.get("c") or "/etc/crictl.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        cfg = {}
    runtime = opts.get("r") or str(cfg.get("runtime-endpoint") or DEFAULT)
    image = opts.get("i") or str(cfg.get("image-endpoint") or "") or runtime
    return runtime, image


def human_size(size: float) -> str:
    """docker/go-units HumanSizeWithPrecision(size, 3): decimal units, three significant digits."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.3g}{units[i]}"


def table(rows: list[list[str]]) -> str:
    """Go's tabwriter as crictl sets it up (minwidth 20, padding 3)."""
    return tabwriter.table(rows, 20, 3)


def by_ref(image: dict[str, Any]) -> tuple[int, str]:
    """crictl's imageByRef order: by the first tag, else the first digest, else the ID."""
    if image["repoTags"]:
        return 0, image["repoTags"][0]
    if image["repoDigests"]:
        return 1, image["repoDigests"][0]
    return 2, image["id"]


def status(image: dict[str, Any]) -> dict[str, Any]:
    """The CRI Image message as protojson writes it (EmitDefaultValues; uint64 as a string)."""
    return {"id": image["id"], "repoTags": image["repoTags"], "repoDigests": image["repoDigests"],
            "size": str(image["size"]), "uid": None, "username": "", "spec": None, "pinned": False}


def info(image: dict[str, Any]) -> dict[str, Any]:
    layer = "sha256:" + images.sha256_hex("layer " + image["id"])
    return {"chainID": layer, "imageSpec": {"architecture": "amd64", "os": "linux", "config": {},
                                            "rootfs": {"type": "layers", "diff_ids": [layer]}}}


def cmd_images(args: list[str]) -> None:
    p = argparse.ArgumentParser(prog="crictl images", allow_abbrev=False)
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("-o", "--output", default="")
    p.add_argument("--digests", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--pinned", action="store_true")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("reference", nargs="?")  # passed to the runtime; containerd's ListImages ignores it
    a = p.parse_args(args)
    found = sorted(images.listed(), key=by_ref)
    if a.output == "json":
        print(json.dumps({"images": [status(i) for i in found]}, indent=2))
        return
    if a.output == "yaml":
        print(yaml.safe_dump({"images": [status(i) for i in found]}, sort_keys=False))
        return
    if a.quiet:
        print("".join(f"{i['id']}\n" for i in found), end="")
        return
    if a.verbose:
        for i in found:
            print(f"ID: {i['id']}")
            print("".join(f"RepoTags: {t}\n" for t in i["repoTags"]), end="")
            print("".join(f"RepoDigests: {d}\n" for d in i["repoDigests"]), end="")
            print(f"Size: {i['size']}\n")
        return
    head = ["IMAGE", "TAG", *(["DIGEST"] if a.digests else []), "IMAGE ID", "SIZE", *(["PINNED"] if a.pinned else [])]
    rows = [head]
    for i in found:
        name, digest = i["repoDigests"][0].split("@") if i["repoDigests"] else ("<none>", "<none>")
        image_id = i["id"] if a.no_trunc else i["id"].removeprefix("sha256:")[:13]
        digest = digest if a.no_trunc else digest.removeprefix("sha256:")[:13]
        pairs = [t.rsplit(":", 1) for t in i["repoTags"]] or [[name, "<none>"]]
        for repo, tag in pairs:
            rows.append([repo, tag, *([digest] if a.digests else []), image_id, human_size(i["size"]),
                         *(["false"] if a.pinned else [])])
    print(table(rows), end="")


def cmd_pull(args: list[str]) -> None:
    p = argparse.ArgumentParser(prog="crictl pull", allow_abbrev=False)
    for flag in ("--creds", "--auth", "--pod-config", "--pull-timeout"):
        p.add_argument(flag)
    p.add_argument("-u", "--username")
    p.add_argument("-a", "--annotation", action="append")
    p.add_argument("image", nargs="*")
    a = p.parse_args(args)
    if not a.image or not a.image[0]:
        raise Fatal("Image name cannot be empty")
    ref = a.image[0]
    try:
        image = images.pull(ref)
    except images.PullError as exc:
        now = datetime.datetime.now()
        print(f'E{now:%m%d %H:%M:%S.%f} {os.getpid():>7} remote_image.go:242] "PullImage from image service failed" '
              f'err={json.dumps(str(exc))} image={json.dumps(ref)}', file=sys.stderr)
        raise Fatal(f"pulling image: {exc}") from None
    print(f"Image is up to date for {image['id']}")


def cmd_inspecti(args: list[str]) -> None:
    p = argparse.ArgumentParser(prog="crictl inspecti", allow_abbrev=False)
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-o", "--output", default="json", choices=["json", "yaml", "table", "go-template"])
    p.add_argument("--template", default="")
    p.add_argument("image", nargs="+")
    a = p.parse_args(args)
    stored = images.listed()
    result = []
    for ref in a.image:
        image = images.find(stored, ref)
        if image is None:
            raise Fatal(f"no such image {json.dumps(ref)} present")
        if a.output == "table":
            print(f"ID: {image['id']}")
            print("".join(f"Tag: {t}\n" for t in image["repoTags"]), end="")
            print("".join(f"Digest: {d}\n" for d in image["repoDigests"]), end="")
            print(f"Size: {human_size(image['size'])}")
            continue
        entry = {"status": status(image)}
        if not a.quiet:
            entry["info"] = info(image)
        result.append(entry)
    if not result:
        return
    doc: Any = result[0] if len(result) == 1 else result
    if a.output == "yaml":
        print(yaml.safe_dump(doc, sort_keys=True))
    else:
        print(json.dumps(doc, indent=2, sort_keys=True))


def cmd_rmi(args: list[str]) -> None:
    p = argparse.ArgumentParser(prog="crictl rmi", allow_abbrev=False)
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-q", "--prune", action="store_true")
    p.add_argument("image", nargs="*")
    a = p.parse_args(args)
    stored = images.listed()
    wanted = list(a.image) + ([i["id"] for i in stored] if a.all or a.prune else [])
    if not wanted:
        if a.all or a.prune:
            log("info", "No images to remove")
            return
        print("NAME:\n   crictl rmi - Remove one or more images\n\nUSAGE:\n   crictl rmi [command options] "
              "IMAGE-ID [IMAGE-ID...]")
        return
    errored = False
    for ref in dict.fromkeys(wanted):
        image = images.find(stored, ref)
        if image is None:
            log("error", f"no such image {ref}")
            errored = True
            continue
        images.remove(image["id"])
        stored = [i for i in stored if i["id"] != image["id"]]
        print("".join(f"Deleted: {t}\n" for t in image["repoTags"] or image["repoDigests"]), end="")
    if errored:
        raise Fatal("unable to remove the image(s)")


class NoRuntime:
    """The runtime under a test root or without python3-grpcio: no pods, no containers."""

    def list_pod_sandboxes(self) -> list[dict[str, Any]]:
        return []

    def list_containers(self, sandbox_id: str = "") -> list[dict[str, Any]]:
        return []

    def _missing(self, kind: str, ident: str) -> cri.CriError:
        return cri.CriError("NotFound", f"an error occurred when try to find {kind} {json.dumps(ident)}: not found")

    def pod_sandbox_status(self, sandbox_id: str, verbose: bool = False) -> dict[str, Any]:
        raise self._missing("sandbox", sandbox_id)

    def container_status(self, container_id: str) -> dict[str, Any]:
        raise self._missing("container", container_id)

    def stop_pod_sandbox(self, sandbox_id: str) -> None:
        raise self._missing("sandbox", sandbox_id)

    remove_pod_sandbox = stop_pod_sandbox

    def stop_container(self, container_id: str, timeout: int = 0) -> None:
        raise self._missing("container", container_id)

    def remove_container(self, container_id: str) -> None:
        raise self._missing("container", container_id)

    def close(self) -> None:
        pass


def open_runtime(endpoint: str, timeout: float) -> Any:
    """The CRI runtime at endpoint (cri.Runtime), or NoRuntime under a test root or without python3-grpcio."""
    if str(paths.root()) != "/" or not cri.available():
        return NoRuntime()
    return cri.Runtime(endpoint, timeout=timeout)


def human_duration(seconds: float) -> str:
    """docker/go-units HumanDuration, as crictl's CREATED column shows it (with " ago")."""
    s = int(seconds)
    minutes, hours = int(seconds / 60), round(seconds / 3600)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def created(nanos: int, now: float | None = None) -> str:
    return human_duration((time.time() if now is None else now) - nanos / 1e9) + " ago"


def trunc(ident: str, prefix: str = "") -> str:
    return ident.removeprefix(prefix)[:TRUNCATED_ID]


def camel(value: Any) -> Any:
    """Our snake_case dicts with protojson's lowerCamelCase keys (int64 as strings), as crictl -o json prints."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            head, *rest = key.split("_")
            name = head + "".join(r.title() for r in rest) if "_" in key else key
            out[name] = str(item) if key.endswith("_at") else camel(item)
        return out
    if isinstance(value, list):
        return [camel(v) for v in value]
    return value


def dump(doc: Any, output: str) -> None:
    if output == "yaml":
        print(yaml.safe_dump(doc, sort_keys=False), end="")
    else:
        print(json.dumps(doc, indent=2))


def list_parser(prog: str) -> argparse.ArgumentParser:
    """The options `pods` and `ps` share."""
    p = argparse.ArgumentParser(prog=prog, allow_abbrev=False)
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-o", "--output", default="table", choices=["json", "yaml", "table"])
    p.add_argument("--name", default="")
    p.add_argument("-s", "--state", default="")
    p.add_argument("--id", default="")
    p.add_argument("--label", action="append", default=[])
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("-l", "--latest", action="store_true")
    p.add_argument("--last", type=int, default=0)
    return p


def selected(items: list[dict[str, Any]], a: argparse.Namespace, states: dict[str, str], state: str,
             also: Any = lambda item: True) -> list[dict[str, Any]]:
    """Items matching the shared filters (state, ID prefix, name regex, labels), newest first, --latest/--last."""
    labels = dict(item.split("=", 1) for item in a.label if "=" in item)
    found = [
        item for item in items
        if (not state or states[item["state"]].lower() == state) and item["id"].startswith(a.id)
        and re.search(a.name, item["metadata"]["name"]) and also(item)
        and all(item["labels"].get(k) == v for k, v in labels.items())
    ]
    found.sort(key=lambda item: item["created_at"], reverse=True)
    return found[: 1 if a.latest else a.last] if a.latest or a.last else found


def listed(found: list[dict[str, Any]], a: argparse.Namespace, key: str, head: list[str], row: Any) -> None:
    """-o json/yaml ({key: [...]}), -q (full IDs) or the table."""
    if a.output in ("json", "yaml"):
        dump({key: [camel(item) for item in found]}, a.output)
    elif a.quiet:
        print("".join(f"{item['id']}\n" for item in found), end="")
    else:
        print(table([head, *(row(item) for item in found)]), end="")


def cmd_pods(args: list[str], rt: Any, now: float | None = None) -> None:
    p = list_parser("crictl pods")
    p.add_argument("--namespace", default="")
    a = p.parse_args(args)
    state = a.state.lower()
    if state and state not in ("ready", "notready"):
        raise Fatal("state should be ready or not ready")
    pods = selected(rt.list_pod_sandboxes(), a, POD_STATES, state,
                    lambda pod: re.search(a.namespace, pod["metadata"]["namespace"]))

    def row(pod: dict[str, Any]) -> list[str]:
        meta = pod["metadata"]
        return [pod["id"] if a.no_trunc else trunc(pod["id"]), created(pod["created_at"], now),
                POD_STATES[pod["state"]], meta["name"], meta["namespace"], str(meta["attempt"]),
                pod.get("runtime_handler") or "(default)"]

    listed(pods, a, "items", ["POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME"], row)


def cmd_ps(args: list[str], rt: Any, now: float | None = None) -> None:
    p = list_parser("crictl ps")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-p", "--pod", default="")
    p.add_argument("--image", default="")
    a = p.parse_args(args)
    state = a.state.lower() or ("" if a.all or a.latest or a.last else "running")
    found = selected(rt.list_containers(), a, CONTAINER_STATES, state,
                     lambda c: c["pod_sandbox_id"].startswith(a.pod))

    def row(c: dict[str, Any]) -> list[str]:
        image = c["image"]
        if not a.no_trunc and image.startswith("sha256:"):
            image = trunc(image, "sha256:")
        return [c["id"] if a.no_trunc else trunc(c["id"]), image, created(c["created_at"], now),
                CONTAINER_STATES[c["state"]], c["metadata"]["name"], str(c["metadata"]["attempt"]),
                c["pod_sandbox_id"] if a.no_trunc else trunc(c["pod_sandbox_id"]),
                c["labels"].get("io.kubernetes.pod.name", "unknown")]

    listed([{**c, "image": {"image": c["image"]}} if a.output in ("json", "yaml") else c for c in found], a,
           "containers", ["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD"], row)


def each_id(ids: list[str], doing: str, call: Any) -> Iterator[tuple[str, Any]]:
    """call(ID) for each ID, with its answer; the first failure is fatal ("<doing> "<ID>": rpc error: ...")."""
    if not ids:
        raise Fatal("ID cannot be empty")
    for ident in ids:
        try:
            answer = call(ident)
        except cri.CriError as exc:
            raise Fatal(f"{doing} {json.dumps(ident)}: {exc}") from None
        yield ident, answer


def cmd_inspectp(args: list[str], rt: Any) -> None:
    p = argparse.ArgumentParser(prog="crictl inspectp", allow_abbrev=False)
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-o", "--output", default="json", choices=["json", "yaml", "table"])
    p.add_argument("id", nargs="*")
    a = p.parse_args(args)
    for _, status in each_id(a.id, "getting the pod sandbox status for",
                             lambda i: rt.pod_sandbox_status(i, verbose=not a.quiet)):
        net = status["network"]
        net_json = {"additionalIps": [{"ip": ip} for ip in net["additional_ips"]], "ip": net["ip"]}
        fields = ("id", "metadata", "state", "created_at", "labels", "annotations", "runtime_handler")
        doc = {"status": {**camel({k: status[k] for k in fields[:4]}), "network": net_json,
                          **camel({k: status[k] for k in fields[4:]})}, **status["info"]}
        if a.output == "table":
            print(f"ID: {status['id']}\nName: {status['metadata']['name']}\nUID: {status['metadata']['uid']}\n"
                  f"Namespace: {status['metadata']['namespace']}\nAttempt: {status['metadata']['attempt']}\n"
                  f"Status: {status['state']}\nIP Addresses: {net['ip']}")
            continue
        dump(doc, a.output)


def cmd_stopp(args: list[str], rt: Any) -> None:
    for ident, _ in each_id([a for a in args if not a.startswith("-")], "stopping the pod sandbox",
                            rt.stop_pod_sandbox):
        print(f"Stopped sandbox {ident}")


def remove_command(prog: str, args: list[str], rt: Any, pods: bool) -> None:
    """crictl rmp / rm: each ID (or every one with --all) removed, stopped first with --force (a running one is
    refused without it); every failure is reported at the end."""
    p = argparse.ArgumentParser(prog=prog, allow_abbrev=False)
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("id", nargs="*")
    a = p.parse_args(args)
    if pods:
        what, items, done = "pod sandbox", rt.list_pod_sandboxes, "Removed sandbox {}"
        stop, remove = rt.stop_pod_sandbox, rt.remove_pod_sandbox
        running = lambda i: rt.pod_sandbox_status(i)["state"] == "SANDBOX_READY"  # noqa: E731
    else:
        what, items, done = "container", rt.list_containers, "{}"
        stop, remove = lambda i: rt.stop_container(i, 0), rt.remove_container
        running = lambda i: rt.container_status(i)["state"] == "CONTAINER_RUNNING"  # noqa: E731
    ids = [item["id"] for item in items()] if a.all else list(a.id)
    if not ids:
        if a.all:
            log("info", f"No {'pods' if pods else 'containers'} to remove")
        else:  # as urfave/cli shows a subcommand's help
            kind, arg = ("pods", "POD-ID") if pods else ("containers", "CONTAINER-ID")
            print(f"NAME:\n   {prog} - Remove one or more {kind}\n\nUSAGE:\n   {prog} [command options] "
                  f"{arg} [{arg}...]")
        return
    errors = []
    for ident in ids:
        try:
            if running(ident):
                if not a.force:
                    raise Fatal(f"{what} {json.dumps(ident)} is running, please stop it first")
                stop(ident)
            remove(ident)
        except cri.CriError as exc:
            errors.append(f"removing the {what} {json.dumps(ident)}: {exc}")
            continue
        print(done.format(ident))
    if errors:
        raise Fatal("; ".join(errors))


def cmd_rmp(args: list[str], rt: Any) -> None:
    remove_command("crictl rmp", args, rt, pods=True)


def cmd_rm(args: list[str], rt: Any) -> None:
    remove_command("crictl rm", args, rt, pods=False)


def cmd_stop(args: list[str], rt: Any) -> None:
    p = argparse.ArgumentParser(prog="crictl stop", allow_abbrev=False)
    p.add_argument("-t", "--timeout", type=int, default=0)
    p.add_argument("id", nargs="*")
    a = p.parse_args(args)
    for ident, _ in each_id(a.id, "stopping the container", lambda i: rt.stop_container(i, a.timeout)):
        print(ident)


RUNTIME_COMMANDS = {"pods": cmd_pods, "ps": cmd_ps, "inspectp": cmd_inspectp, "stopp": cmd_stopp, "rmp": cmd_rmp,
                    "stop": cmd_stop, "rm": cmd_rm}


def main() -> int:
    opts, rest = split_globals(sys.argv[1:])
    if "version" in opts:
        print("crictl version v1.33.0")
        return 0
    cmd, args = (rest[0], rest[1:]) if rest else ("help", [])
    runtime, image_ep = endpoints(opts)
    try:
        if cmd not in ("help", "config", "completion") and "help" not in opts:
            ep, api = (image_ep, "image") if cmd in IMAGE_COMMANDS else (runtime, "runtime")
            if cri_answers(ep) is not None:
                raise Fatal(f'validate service connection: validate CRI v1 {api} API for endpoint "{ep}": '
                            "rpc error: code = Unavailable desc = connection error")
        run(cmd, args, runtime, timeout_seconds(opts.get("t", "")))
    except (Fatal, cri.CriError) as exc:
        log("fatal", str(exc))
        return 1
    return 0


def timeout_seconds(value: str) -> float:
    """--timeout as crictl takes it (a Go duration like 2s or 500ms, or seconds); generous when unset."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)?", value.strip())
    if not m:
        return 60.0
    return float(m[1]) * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[m[2]]


def run(cmd: str, args: list[str], endpoint: str = DEFAULT, timeout: float = 60.0) -> None:
    if cmd in RUNTIME_COMMANDS:
        rt = open_runtime(endpoint, timeout)
        try:
            RUNTIME_COMMANDS[cmd](args, rt)
        finally:
            rt.close()
    elif cmd == "version":
        print("Version:  0.1.0\nRuntimeName:  containerd\nRuntimeVersion:  1.6.20\nRuntimeApiVersion:  v1")
    elif cmd == "info":
        print(
            '{"status": {"conditions": [{"type": "RuntimeReady", "status": true}, '
            '{"type": "NetworkReady", "status": true}]}}'
        )
    elif cmd in ("images", "image", "img"):
        cmd_images(args)
    elif cmd == "pull":
        cmd_pull(args)
    elif cmd == "inspecti":
        cmd_inspecti(args)
    elif cmd == "rmi":
        cmd_rmi(args)
    # Anything else: the runtime answered and there is nothing to show.


if __name__ == "__main__":
    sys.exit(main())

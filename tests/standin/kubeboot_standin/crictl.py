"""crictl stand-in (cri-tools 1.33): answers from the configured runtime socket.

Real crictl speaks CRI gRPC. The roles ask whether the runtime answers (`info`, `version`), list or remove pods, and
pull images ahead (`pull`, `inspecti`, `images`, `rmi`): those work on the node's image store (images.py), with
crictl's output and exit codes. Errors go to stderr as logrus writes them without a terminal
(`time="..." level=fatal msg="..."`) and exit 1.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from typing import Any

import yaml

from . import images, paths
from .kubeadm.preflight import cri_answers

DEFAULT = "unix:///run/containerd/containerd.sock"
# Global options that take a value (urfave/cli: they come before the command).
GLOBAL_VALUE = {"--runtime-endpoint": "r", "-r": "r", "--image-endpoint": "i", "-i": "i", "--timeout": "t",
                "-t": "t", "--config": "c", "-c": "c"}
IMAGE_COMMANDS = {"images", "image", "img", "pull", "inspecti", "rmi", "imagefsinfo"}


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
    """Go's tabwriter as crictl sets it up (minwidth 20, padding 3): every cell but a row's last is padded."""
    widths = [max(20, max(len(r[c]) for r in rows) + 3) for c in range(len(rows[0]) - 1)]
    return "".join("".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)) + r[-1] + "\n" for r in rows)


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
        run(cmd, args)
    except Fatal as exc:
        log("fatal", str(exc))
        return 1
    return 0


def run(cmd: str, args: list[str]) -> None:
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
    elif cmd in ("images", "image", "img"):
        cmd_images(args)
    elif cmd == "pull":
        cmd_pull(args)
    elif cmd == "inspecti":
        cmd_inspecti(args)
    elif cmd == "rmi":
        cmd_rmi(args)
    # Anything else (rm, rmp, stop, ...): the runtime answered and there is nothing to show or remove.


if __name__ == "__main__":
    sys.exit(main())

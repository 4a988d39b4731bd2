"""Plan and write ``host_vars/<name>.yml`` without clobbering what an operator wrote by hand.

Only the keys discover manages are touched, in place (other keys, their order and every comment stay as written);
absent managed keys are appended. A managed key that already holds another value is a *conflict*: the caller shows
the diff and writes only after confirmation. A file whose managed values already agree is left alone ("unchanged").
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kubeboot.errors import KubebootError

# Written in this order; the nic_rename role reads public_nic_mac, the cluster roles read node_ip.
MANAGED_KEYS = ("ansible_host", "public_nic_mac", "node_ip")

HEADER = (
    "# host_vars for {name}, written by `kubeboot discover`.\n"
    "# discover manages {keys} here and updates them in place;\n"
    "# every other key and comment is kept as you write it.\n"
)


# After `key`: the value on the same line (quoted or plain) and an optional trailing comment.
# Block scalars, anchors, tags and flow collections (`>`, `|`, `&`, `*`, `!`, `[`, `{`) are not one-line values.
_VALUE_RE = r"""\s*:\s*(?P<value>"[^"]*"|'[^']*'|[^#\s>|&*!\[{][^#]*?)\s*(?P<comment>#.*)?$"""


class HostVarsError(KubebootError):
    exit_code = 1


@dataclass(frozen=True)
class Change:
    key: str
    old: object | None  # None: the key was absent
    new: str


@dataclass(frozen=True)
class HostVarsPlan:
    """What writing one host's managed values would do."""

    name: str
    path: Path
    status: str  # "create", "update" (only additions), "conflict" (replaces a value), "unchanged"
    old_text: str
    new_text: str
    changes: tuple[Change, ...] = ()
    conflicts: tuple[str, ...] = field(default_factory=tuple)

    @property
    def needs_confirmation(self) -> bool:
        return self.status == "conflict"

    def diff(self) -> str:
        return "".join(difflib.unified_diff(
            self.old_text.splitlines(keepends=True), self.new_text.splitlines(keepends=True),
            fromfile=str(self.path) if self.old_text else "/dev/null", tofile=str(self.path),
        ))


def host_vars_path(inventory: Path, name: str) -> Path:
    """``host_vars/<name>.yml`` next to the inventory (a directory, or its hosts file); an existing ``.yaml``
    file is used as is."""
    base = inventory.parent if inventory.suffix in (".yml", ".yaml") or inventory.is_file() else inventory
    folder = base / "host_vars"
    for suffix in (".yml", ".yaml"):
        if (folder / f"{name}{suffix}").is_file():
            return folder / f"{name}{suffix}"
    return folder / f"{name}.yml"


def same_value(key: str, old: object, new: str) -> bool:
    """Equal as the roles would read them: MACs ignoring case, addresses in canonical form."""
    if not isinstance(old, str):
        return False
    if key == "public_nic_mac":
        return old.strip().lower() == new.lower()
    try:
        return ipaddress.ip_address(old.strip()) == ipaddress.ip_address(new)
    except ValueError:
        return old.strip() == new


def _line(key: str, value: str) -> str:
    return f"{key}: {json.dumps(value)}\n"  # quoted: an all-digit MAC would otherwise read as a YAML 1.1 number


def _load_mapping(text: str, path: Path) -> dict[str, object]:
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise HostVarsError(f"{path}{where} is not valid YAML; fix it by hand, discover leaves it alone") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise HostVarsError(f"{path} is not a YAML mapping of variables; fix it by hand")
    return {str(k): v for k, v in data.items()}


def update_text(old_text: str, name: str, path: Path, values: dict[str, str]) -> HostVarsPlan:
    """The plan for writing ``values`` (managed keys only) into a file whose current text is ``old_text``
    (empty: no file yet). Pure: reads and writes nothing."""
    unknown = set(values) - set(MANAGED_KEYS)
    if unknown:
        raise ValueError(f"discover does not manage {sorted(unknown)}")
    ordered = [(k, values[k]) for k in MANAGED_KEYS if k in values]
    if not old_text.strip():
        header = HEADER.format(name=name, keys=", ".join(MANAGED_KEYS))
        new_text = header + "".join(_line(k, v) for k, v in ordered)
        return HostVarsPlan(name, path, "create", old_text, new_text, tuple(Change(k, None, v) for k, v in ordered))
    current = _load_mapping(old_text, path)
    lines = old_text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    changes: list[Change] = []
    conflicts: list[str] = []
    appended: list[str] = []
    for key, value in ordered:
        if key not in current:
            appended.append(_line(key, value))
            changes.append(Change(key, None, value))
            continue
        if same_value(key, current[key], value):
            continue
        pattern = re.compile(rf"^{re.escape(key)}{_VALUE_RE}")
        at = [i for i, line in enumerate(lines) if pattern.match(line.rstrip("\n"))]
        if len(at) != 1:
            raise HostVarsError(f"{path}: {key} is not a one-line `{key}: value` entry; set it to {value} by hand")
        match = pattern.match(lines[at[0]].rstrip("\n"))
        assert match is not None
        comment = f"  {match.group('comment')}" if match.group("comment") else ""
        lines[at[0]] = _line(key, value).rstrip("\n") + comment + "\n"
        changes.append(Change(key, current[key], value))
        conflicts.append(key)
    if not changes:
        return HostVarsPlan(name, path, "unchanged", old_text, old_text)
    new_text = "".join(lines) + "".join(appended)
    expected = {**current, **{c.key: c.new for c in changes}}
    try:
        rewritten: dict[str, object] | None = _load_mapping(new_text, path)
    except HostVarsError:
        rewritten = None
    if rewritten != expected:
        keys = ", ".join(c.key for c in changes)
        raise HostVarsError(f"{path}: cannot rewrite {keys} in place (multi-document or unusual YAML); "
                            "edit them by hand")
    return HostVarsPlan(name, path, "conflict" if conflicts else "update", old_text, new_text, tuple(changes),
                        tuple(conflicts))


def read_existing(path: Path) -> tuple[str, dict[str, object]]:
    """The current text and variables of a host_vars file (empty when there is none)."""
    if path.is_dir():
        raise HostVarsError(f"{path} is a directory; discover writes only host_vars/<name>.yml files")
    if not path.exists():
        return "", {}
    try:
        text = path.read_text()
    except OSError as exc:
        raise HostVarsError(f"cannot read {path}: {exc.strerror}") from None
    return text, _load_mapping(text, path)


def write(plan: HostVarsPlan) -> None:
    """Write the plan's text atomically, keeping an existing file's mode."""
    if plan.status == "unchanged":
        return
    plan.path.parent.mkdir(parents=True, exist_ok=True)
    mode = plan.path.stat().st_mode & 0o7777 if plan.path.exists() else 0o644
    handle, tmp = tempfile.mkstemp(prefix=f".{plan.path.name}.", dir=plan.path.parent)
    try:
        with os.fdopen(handle, "w") as out:
            out.write(plan.new_text)
        os.chmod(tmp, mode)
        os.replace(tmp, plan.path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

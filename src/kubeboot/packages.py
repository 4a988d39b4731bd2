"""What the package database says is installed, from one query per role (dpkg-query or rpm), so that the roles call
the package manager (slow: it loads its whole cache) only when something is missing.

The roles query with:
- Debian/Ubuntu: ``dpkg-query -W -f '${Package}\\t${db:Status-Abbrev}\\t${Version}\\n' NAME...``
- RHEL-family: ``rpm -q --qf '%{NAME}\\tii\\t%{VERSION}-%{RELEASE}\\n' NAME...``

A name the database does not know is absent from the output (dpkg-query and rpm say so on stderr or in a line
without tabs); such a name is missing. The package module stays the authority: this only decides whether to call it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Installed:
    name: str
    version: str
    held: bool


def parse(output: str | list[str]) -> dict[str, Installed]:
    """Installed packages from the query's output, whole or as its lines (status "ii", or "hi" when held); anything
    else is not installed."""
    found: dict[str, Installed] = {}
    for line in output if isinstance(output, list) else output.splitlines():
        fields = line.split("\t")
        if len(fields) != 3:
            continue  # "package foo is not installed" (rpm), or noise
        name, status, version = (field.strip() for field in fields)
        # dpkg's abbreviated status: desired action (u/i/h/r/p), then the package state (i = installed).
        if len(status) >= 2 and status[1] == "i" and status[0] in "ih":
            found[name.split(":")[0]] = Installed(name=name.split(":")[0], version=version, held=status[0] == "h")
    return found


def missing(output: str | list[str], wanted: list[str]) -> list[str]:
    """The names in `wanted` that are not installed. A name with a version (`kubeadm=1.33.1-1.1`,
    `kubeadm-1.33.1`) counts as missing unless that exact version is installed."""
    installed = parse(output)
    result = []
    for item in wanted:
        name, version = split_version(item)
        have = installed.get(name)
        if have is None or (version and not version_matches(have.version, version)):
            result.append(item)
    return result


def not_held(output: str, names: list[str]) -> list[str]:
    """The installed names in `names` that are not held."""
    installed = parse(output)
    return [name for name in names if name in installed and not installed[name].held]


def split_version(item: str) -> tuple[str, str]:
    """`name=version` (apt) into its parts; a bare name has no version."""
    name, _, version = item.partition("=")
    return name.strip(), version.strip()


def version_matches(have: str, want: str) -> bool:
    """apt's `name=VERSION` accepts a trailing `*` glob (`1.33.1-*`)."""
    if want.endswith("*"):
        return have.startswith(want[:-1])
    return have == want


def _upstream(version: str) -> tuple[int, ...]:
    """1.33.1 of a package version (1.33.1-1.1, 1:1.33.1-1.1), as numbers; () when it has none."""
    core = version.split(":", 1)[-1].split("-", 1)[0]
    parts = core.split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else ()


def newer(output: str, names: list[str], version: str) -> list[str]:
    """The installed names in `names` whose version is newer than `version` (1.32.5), as "name version": installing
    the inventory's version there would be a downgrade."""
    wanted = _upstream(version)
    installed = parse(output)
    return [f"{name} {installed[name].version}" for name in names
            if name in installed and wanted and _upstream(installed[name].version) > wanted]


SECTION_MARK = "@@"


def _split(output: str, mark: str) -> dict[str, list[str]]:
    """The lines of `output` by the name of the mark line (`mark` + name) above them; lines before the first mark are
    left out, and a name marked twice keeps its last lines."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith(mark):
            current = found[line[len(mark):].strip()] = []
        elif current is not None:
            current.append(line)
    return found


def sections(output: str) -> dict[str, list[str]]:
    """The lines of one command that reads several things in one go, by section: each section starts with a line
    `@@name`; lines before the first mark are left out. A section named twice keeps its last lines."""
    return _split(output, SECTION_MARK)


PART_MARK = "@@@"


def parts(output: str) -> dict[str, str]:
    """The outputs of several roles' reads run as one command, by part: each part starts with a line `@@@name`; lines
    before the first mark are left out. Each part is then read as that role's own read would be (e.g. by sections)."""
    return {name: "\n".join(lines) for name, lines in _split(output, PART_MARK).items()}


def files_differ(lines: Iterable[str] | str, wanted: Mapping[str, Any], mode: str = "0644",
                 owner: str = "root", group: str = "root") -> list[str]:
    """The paths of `wanted` (path: content, {"sha1": digest of the content}, or None where only the mode and owners
    matter) whose file on the node
    has other content, mode or owners than a copy of that content with that mode would leave, or is missing.

    lines: one line per existing file, `SHA1 MODE OWNER GROUP PATH` (sha1sum and `stat -c '%a %U %G %n'`);
    mode as written in a task ("0644"), compared as stat prints it ("644")."""
    found: dict[str, tuple[str, str, str, str]] = {}
    for line in lines.splitlines() if isinstance(lines, str) else lines:
        parts = str(line).split(" ", 4)
        if len(parts) == 5:
            found[parts[4]] = (parts[0], parts[1], parts[2], parts[3])
    differ = []
    for path, content in wanted.items():
        have = found.get(path)
        digest = (content["sha1"] if isinstance(content, Mapping)
                  else hashlib.sha1(str(content).encode(), usedforsecurity=False).hexdigest())
        if have is None or (have[1], have[2], have[3]) != (str(mode).lstrip("0") or "0", owner, group) \
                or (content is not None and have[0] != digest):
            differ.append(path)
    return differ


def digests(text: str) -> dict[str, dict[str, str]]:
    """`PATH SHA1` lines (a template's rendering per file, hashed on the controller) as files_differ's wanted
    entries: {path: {"sha1": digest}}."""
    pairs = (line.split() for line in str(text or "").splitlines())
    return {pair[0]: {"sha1": pair[1]} for pair in pairs if len(pair) == 2}

"""The `kubeboot` command line: each command group lives in its own module and registers itself here."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from kubeboot import __version__
from kubeboot.errors import KubebootError

# Modules that expose ``register(subparsers)``; each registered parser sets ``func``.
COMMAND_MODULES = (
    "kubeboot.sandbox.cli",
    "kubeboot.inventory.cli",
    "kubeboot.discover.cli",
    "kubeboot.status.cli",
    "kubeboot.vm.cli",
)

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubeboot",
        description="Helpers for bootstrapping kubeadm clusters with Ansible.",
    )
    parser.add_argument("--version", action="version", version=f"kubeboot {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Handler = args.func
    try:
        return func(args)
    except KubebootError as exc:
        print(f"kubeboot: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("kubeboot: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Errors a user can meet: one line naming what is wrong and how to fix it."""

from __future__ import annotations


class KubebootError(Exception):
    """An error reported to the user as one line; ``exit_code`` is what the CLI returns."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(KubebootError):
    """Bad input (arguments, inventory, variables): nothing was changed."""

    exit_code = 2

"""User-facing errors: each carries one line that names the problem and a hint to fix it.

The CLI catches :class:`DLMError`, prints ``error: <message> (hint: <hint>)`` and exits with code 2.
"""

from __future__ import annotations


class DLMError(Exception):
    """Base class for mistakes a user can act on (bad input, bad config, bad checkpoint)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = f"error: {self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return " ".join(text.split())


class ConfigError(DLMError):
    """An unknown name, a bad value or a bad key in a config or recipe."""


class InputError(DLMError):
    """Tensors or arguments of the wrong shape, range or type."""


class CheckpointError(DLMError):
    """A missing, truncated, corrupt or foreign checkpoint."""


class DataError(DLMError):
    """Missing or unreadable training/evaluation data."""

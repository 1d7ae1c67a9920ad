"""The user-facing error types: the CLI prints these as one line, never as a traceback."""

from __future__ import annotations

import difflib


class VidrecError(Exception):
    """Base class of every error a user can cause (bad input, bad names, bad settings)."""


class VideoError(VidrecError):
    """A video cannot be opened, decoded or sampled."""


class ConfigError(VidrecError):
    """An unknown model name, an unknown option, or a value out of range."""


def unknown_name_message(kind: str, name: str, valid: list[str] | tuple[str, ...]) -> str:
    """`unknown model 'x'; did you mean 'y'? valid: a, b, c` (the one-line error for typos)."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown {kind} '{name}'{hint} (valid: {', '.join(valid)})"


class AnnotationError(VidrecError):
    """A malformed annotation file: the message names the file, the line and what is wrong."""

    def __init__(self, path: str, line: int | None, reason: str):
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}")
        self.path, self.line, self.reason = path, line, reason

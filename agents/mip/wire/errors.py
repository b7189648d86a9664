"""The single error raised by every decoder in :mod:`agents.mip`."""

from __future__ import annotations


class DecodeError(ValueError):
    """Malformed input: where it went wrong (byte offset) and why.

    Decoders raise this and nothing else, and never return a half-built object.
    """

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"offset {offset}: {reason}")
        self.offset = offset
        self.reason = reason

"""The one exception the reports package raises for unusable input."""

from __future__ import annotations


class RunFolderError(Exception):
    """The run folder is missing, or one of its files is malformed (the message says which and where)."""

"""The one error the labs command reports as a line of text (exit 2), never a traceback."""


class LabError(Exception):
    """Bad input: no such lab, a missing run folder, a malformed answers or settings file."""


class Missing(Exception):
    """The run folder lacks the evidence a task is marked from (the task is then marked wrong, with why)."""

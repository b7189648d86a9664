"""``--set`` values checked by the agents' own config loaders before anything runs.

:func:`topologies.overrides.apply_overrides` only walks the tables; whether a value fits its key (a number
where a number belongs, a known key) is the agent's to say. Each agent whose config a ``--set`` touched is
loaded here with the loader it uses at start (``python -m agents ROLE --check``), so a wrong value is one
line and exit 2 before the run folder exists, instead of an agent that fails to start later (or a
scenario that read the raw value first and crashed).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from agents.runtime.cli import find_runner
from agents.runtime.frame import is_config_error
from topologies.overrides import Override, OverrideError
from topologies.spec import NodeSpec


def check_overridden_configs(specs: Mapping[str, NodeSpec], overrides: Iterable[Override]) -> None:
    """Load every agent config an override touched; raise :class:`OverrideError` with the agent's message."""
    for node in sorted({override.node for override in overrides}):
        spec = specs.get(node)
        text = None if spec is None else spec.agent_toml()
        if spec is None or spec.role is None or text is None:
            continue  # apply_overrides has refused an unknown node already
        with tempfile.TemporaryDirectory(prefix="dsmip-set-") as folder:
            path = Path(folder) / f"{node}.toml"
            path.write_text(text)
            try:
                find_runner(spec.role).load_config(path)
            except Exception as error:
                if not is_config_error(error):
                    raise
                message = str(error).replace(f"{path}: ", "")  # the file is ours, not the user's
                raise OverrideError(f"--set for {node}: {message}") from None

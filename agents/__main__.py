"""``python -m agents ROLE --config FILE ...``: see :mod:`agents.runtime.cli`."""

from agents.runtime.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

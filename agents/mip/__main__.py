"""`python -m agents.mip`: the `mipdump` decoder (kept outside this pure package, in agents.mipdump)."""

import sys

from agents.mipdump.cli import main

sys.exit(main())

"""`python -m agents.mipdump`: the same as the `mipdump` command."""

import sys

from agents.mipdump.cli import main

sys.exit(main())

"""`python -m podpath` runs the CLI."""

from __future__ import annotations

import sys

from podpath.cli import main

sys.exit(main())

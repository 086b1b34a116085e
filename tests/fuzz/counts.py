"""How many inputs each fuzz test sent (printed by ``conftest.py`` at the end of the run), and
how many each should send."""

from __future__ import annotations

import os
from collections import Counter

COUNTS: Counter[str] = Counter()
#: Examples per hypothesis test; ``NEXUS_FUZZ_EXAMPLES`` raises it for a longer run (read at
#: import: the suite's autouse fixture clears NEXUS_* variables before each test).
EXAMPLES = int(os.environ.get("NEXUS_FUZZ_EXAMPLES", "300"))

"""The process that test_ledger.py kills: a :class:`SqliteLedger` (default flush interval) on the
file named by the first argument, charging tenant ``acme`` one request ($0.001, 10 input and 5
output tokens) every ``PAUSE`` seconds. Prints ``ready`` once started, then the number of charges
made after each charge (the charge comes first, so a printed number was charged)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from nexus.state.ledger_sqlite import SqliteLedger

PAUSE = 0.005


async def main(path: Path) -> None:
    ledger = SqliteLedger(path)
    await ledger.start()
    print("ready", flush=True)
    charged = 0
    while True:
        ledger.charge("acme", usd=0.001, input_tokens=10, output_tokens=5)
        charged += 1
        print(charged, flush=True)
        await asyncio.sleep(PAUSE)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))

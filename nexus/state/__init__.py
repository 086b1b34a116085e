"""State shared between Nexus replicas and workers (``[state] backend = "redis"``).

With the default ``memory`` backend nothing here runs: each process has its own registry,
health, in-flight counts and counters. With Redis, replicas share:

- status changes and cooldowns: a backend one replica saw die (hard failure, failure threshold)
  or answer 429 is skipped by every replica within about one sync interval; a recovery is shared
  the same way;
- in-flight leases per backend: ``max_concurrent`` holds across replicas; a lease is refreshed
  while its request runs and expires ``lease_ttl_seconds`` after its replica stopped refreshing
  it (killed, frozen, cut off);
- the counters behind ``/v1/stats``.

See :mod:`nexus.state.shared` for the timing and the fallback when Redis is slow or down.
:class:`MemoryStore` keeps the same state in one process, for tests (no server, a fake clock).
"""

from nexus.state.memory import MemoryStore
from nexus.state.shared import SharedState, create_shared_state
from nexus.state.store import Store

__all__ = ["MemoryStore", "SharedState", "Store", "create_shared_state"]

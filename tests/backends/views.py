"""Reading one backend out of a registry snapshot in tests."""

from __future__ import annotations

from nexus.backends.state import BackendView, Snapshot


def view(snapshot: Snapshot, name: str) -> BackendView:
    """The view of backend ``name`` in ``snapshot`` (it must be there)."""
    found = [backend for backend in snapshot.backends if backend.name == name]
    assert found, f"no backend {name!r} in the snapshot"
    return found[0]

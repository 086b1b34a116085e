"""Backends: what kinds exist, and (later) their live state."""

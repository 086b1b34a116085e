"""The dashboard: rendering, escaping, live updates, and a real browser."""

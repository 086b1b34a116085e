"""Benchmarks: scripts that measure, print a table and write JSON to bench/results/."""

"""Health: probes, the pure transition function, and the loop that drives them."""

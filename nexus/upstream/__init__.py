"""Upstream transports: the byte relay (OpenAI-compatible backends) and LiteLLM (translated)."""

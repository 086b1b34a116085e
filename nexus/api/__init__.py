"""HTTP routers: parse, authenticate, render responses and errors."""

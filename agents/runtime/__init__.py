"""agents/runtime."""

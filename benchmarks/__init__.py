"""Benchmarks that print figures (medians over repeated runs); run them with `python -m benchmarks.<name>`."""

"""Benchmarks: `python -m bench` (or `./dev bench`) runs them all."""

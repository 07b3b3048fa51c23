"""Hiker benchmarks: ``python -m benchmarks [--quick] [--only a,b]`` (see RESULTS.md)."""

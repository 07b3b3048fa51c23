"""Hiker benchmarks: ``python -m benchmarks [--quick] [--only a,b] [--baseline REF]``."""

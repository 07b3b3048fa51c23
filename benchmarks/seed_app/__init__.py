"""The seed design, for comparison (runs in the benchmark's own venv, not the project's)."""

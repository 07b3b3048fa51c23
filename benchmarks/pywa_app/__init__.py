"""The pywa comparison app (runs in the benchmark's own venv, not the project's)."""

"""Code every service shares: settings, contracts, topology, adapters and observability."""

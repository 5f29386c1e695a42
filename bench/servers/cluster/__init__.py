"""The component of bench/cluster.py: rooms and broadcasts to a whole channel."""

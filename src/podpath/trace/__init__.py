"""The trace engine: follow a packet through a snapshot, explaining every decision."""

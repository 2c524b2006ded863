"""podpath's Textual app: shows snapshots and traces; never reads the node itself."""

"""The node snapshot: the model, and its JSON codec."""

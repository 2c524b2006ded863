"""The TUI's screens: one Textual Screen per file."""

"""The TUI's screens: one Textual Screen per file, each opened through podpath.tui.registry."""

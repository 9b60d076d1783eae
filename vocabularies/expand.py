"""Placeholder: filled in by its issue (see DESIGN.md for what it owns)."""

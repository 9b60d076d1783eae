"""Revisions of the harvest tables, oldest first."""

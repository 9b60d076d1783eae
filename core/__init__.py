"""Shared kernel: settings, errors, database plumbing and clocks. Imports no package of ours."""

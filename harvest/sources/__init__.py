"""Harvest sources: the `Source` port and retry loop (`port`), and the RegTAP source (`regtap`)."""

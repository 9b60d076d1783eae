"""Harvest sources that read IVOA registries other than over OAI-PMH (RegTAP)."""

"""Getting metadata in: GitLab, OAI-PMH, RegTAP. Imports `catalogue`, `vocabularies`, `core`."""

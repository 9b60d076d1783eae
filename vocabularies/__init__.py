"""SKOS concept schemes: IVOA vocabularies, the UAT and our own. Imports only `core`."""

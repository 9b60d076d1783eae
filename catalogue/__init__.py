"""The catalogue of executables: entries, versions, search. Imports `vocabularies` and `core`."""

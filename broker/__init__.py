"""The IVOA Execution Broker. Imports only `core`; never the catalogue side."""

"""Fakes of outside services that speak their real wire protocol on a loopback port.

Each fake is built from a plain Python description that tests change between steps, and counts
the requests it serves so tests can assert on what a client really asked.
"""

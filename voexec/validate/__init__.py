"""`voexec validate`: conformance scenarios for any IVOA Execution Broker, over HTTP only.

- `exchange`: the HTTP client (httpx), each call recorded;
- `checks`: a run's context, the per-scenario recorder and the calls scenarios share;
- `scenarios`, `older`, `booking`: the scenarios (`booking`'s make and cancel bookings);
- `suite`: the table of scenarios and `run_suite`;
- `report`: findings and their text, JSON and JUnit XML forms;
- `command`: the `voexec validate` command.

Judges the wire as plain dicts; imports nothing from `broker`. docs/validate.md is the suite
read as the standard.
"""

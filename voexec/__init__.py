"""The composition root: builds the app, the services and the CLI from settings.

Imported by nothing; imports every package.
"""

__version__ = "0.1.0"

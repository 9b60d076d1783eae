"""The web pages' presentation: Jinja templates, static CSS and JavaScript, and pure helpers.

- `render`: the only module that imports Jinja; renders templates and fingerprints assets;
- `formats`: numbers, durations and instants as people read them;
- `search_state`: the search page's state, read from and written to its URL;
- `offer_form`: the entry page's "Request offers" form, prefilled and read into a hand-off;
- `broker_views`: offer sets and sessions, read from the broker's wire format, for the pages;
- `timeline`: geometry of the SVG timelines; `broker_charts`: the offers, session and
  platforms charts built with it;
- `text`: a safe subset of Markdown for descriptions.

Everything but `render` is pure (no I/O). Routes live in `voexec/pages_*.py` (assembled by
`voexec/pages_router.py`, sharing `voexec/pages.py`); nothing in the domain packages imports
this package.
"""

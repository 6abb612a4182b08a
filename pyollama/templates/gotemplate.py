"""Moved to `pyollama.templates.gotext`. This alias exists only until server/routes/generate.py
and store/create.py (owned by others in this change) import Template from there; delete it then."""

from pyollama.templates.gotext import Template

__all__ = ["Template"]

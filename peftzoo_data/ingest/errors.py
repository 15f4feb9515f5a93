"""Errors of ingestion: a user's spec, files or recordings that cannot become pairs."""

from __future__ import annotations

from registry.errors import UserError


class IngestError(UserError, ValueError):
    """A spec, file or recording that cannot be ingested; the message names it and the fix.

    A UserError: CLIs print it alone and exit 2; raised inside the `recordings` dataset component it
    reaches `peftzoo_tools.run`, which does the same. (Not a peftzoo_data DataError: that module imports
    torch, which would make `python -m recipes.ingest --schema` slow.)
    """

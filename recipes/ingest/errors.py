"""Errors of ingestion: a user's spec, files or recordings that cannot become pairs."""

from __future__ import annotations

from recipes.data.base import DataError


class IngestError(DataError):
    """A spec, file or recording that cannot be ingested; the message names it and the fix.

    A DataError (so a UserError): CLIs print it alone and exit 2, the `recordings` dataset
    component lets it reach `recipes.run`, which does the same.
    """

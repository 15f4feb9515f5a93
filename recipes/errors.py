"""Recipe errors: one message naming the key, what was wrong and what is allowed."""

from registry.errors import UserError


class RecipeError(UserError):
    """A recipe that cannot be read, overridden or validated."""

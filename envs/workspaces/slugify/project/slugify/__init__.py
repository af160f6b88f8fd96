"""slugify: URL slugs from titles."""

from slugify.core import slugify

__version__ = "2.0.0"
__all__ = ["slugify"]

"""inventory: stock levels and their value."""

from inventory.item import Item
from inventory.store import Store

__version__ = "0.3.0"
__all__ = ["Item", "Store"]

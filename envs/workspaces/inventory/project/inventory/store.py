"""Stock levels per item."""


class Store:
    def __init__(self):
        self._items = {}
        self._qty = {}

    def add(self, item, qty=1):
        if qty <= 0:
            raise ValueError("quantity must be positive")
        self._items[item.sku] = item
        self._qty[item.sku] = self._qty.get(item.sku, 0) + qty

    def remove(self, sku, qty=1):
        have = self._qty.get(sku, 0)
        if qty > have:
            raise ValueError(f"only {have} of {sku} in stock")
        self._qty[sku] = have - qty

    def quantity(self, sku):
        return self._qty.get(sku, 0)

    def total_value(self):
        return sum(self._items[sku].price for sku, qty in self._qty.items())

"""A plain-text stock report."""


def report(store, skus):
    lines = [f"{sku}: {store.quantity(sku)}" for sku in sorted(skus)]
    lines.append(f"total value: {store.total_value():.2f}")
    return "\n".join(lines)

"""csvsum: column summaries of CSV files."""

from csvsum.stats import column_mean, column_values

__version__ = "0.5.0"
__all__ = ["column_mean", "column_values"]

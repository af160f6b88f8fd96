"""calc: a tiny arithmetic expression evaluator."""

from calc.ops import add, divide, multiply, subtract
from calc.parse import evaluate

__version__ = "0.2.0"
__all__ = ["add", "divide", "evaluate", "multiply", "subtract"]

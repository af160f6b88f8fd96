"""Evaluate space-separated infix expressions left to right: "1 + 2 * 3" is (1 + 2) * 3."""

from calc.ops import add, divide, multiply, subtract

OPS = {"+": add, "-": subtract, "*": multiply, "/": divide}


def evaluate(text):
    tokens = text.split()
    if not tokens or len(tokens) % 2 == 0:
        raise ValueError(f"malformed expression: {text!r}")
    value = float(tokens[0])
    for op, operand in zip(tokens[1::2], tokens[2::2]):
        if op not in OPS:
            raise ValueError(f"unknown operator {op!r}")
        value = OPS[op](value, float(operand))
    return value

"""Traces shared by several test files."""

COMPOSED = """- expert: percentage
  trace:
  - {op: init, var: price, value: 80}
  - {op: init, var: rate, value: 20}
  - {op: percent_off, base: price, rate: rate, var: result}
  - {op: query, var: result}
- expert: arithmetic
  trace:
  - {op: init, var: prev, source: prev.result}
  - {op: init, var: shipping, value: 10}
  - {op: compute, compute_op: add, args: [prev, shipping], var: result}
  - {op: query, var: result}
"""

"""Support code for the tests and benchmarks: never imported by the product, never shipped.

Importable from the repository root (pytest's ``pythonpath``, ``python -m benchmarks.NAME``).
"""

"""The echo servers the benchmark measures, one module per implementation."""

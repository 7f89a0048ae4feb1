"""The benchmarks: bench/run.py, integrity.py, scale.py (see docs/performance.md)."""

"""Benchmarks for chad-memory (run with `make bench`); see bench/README.md."""

"""regate-db benchmarks: `make bench` (full) and `make bench-quick`; they print ratios and write results.json."""

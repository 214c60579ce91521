"""The public test kit: deterministic executors, strategies, contract suites."""

"""Benchmarks: one module per measured claim, each printing a table (`make bench`)."""

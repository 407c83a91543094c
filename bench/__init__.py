"""Benchmarks: quorum against a hand-written River baseline, on real and synthetic ticks."""

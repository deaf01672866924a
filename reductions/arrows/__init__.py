"""Arrows (reductions) of the chain; each module holds one arrow family (docs/theory.md §6.1-§6.5)."""

"""Arrows (reductions) of the chain; each module holds one arrow family (REDUCTIONS.md §1-§5)."""

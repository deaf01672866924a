"""Problem records of the reduction chain (REDUCTIONS.md §1-§5)."""

"""Problem records of the reduction chain (docs/theory.md §6.1-§6.5)."""

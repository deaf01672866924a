"""The regression suite: `python -m ci fast|slow|all|bench` runs one tier (see ci/__main__.py)."""

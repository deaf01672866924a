"""CLI subcommands: each module here defines `register(subparsers)`, which adds one or more
subcommands whose parser carries `func=callable(args) -> int`. `harness.cli` discovers them."""

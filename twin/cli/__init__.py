"""The `celltwin` command line: one dispatcher, subcommands registered by each home."""

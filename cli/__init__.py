"""The command line: `messagehooks` and its subcommands, the only code that imports every runtime."""

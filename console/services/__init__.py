"""Use cases shared by the TUI and the CLI. They take ports, never concrete backends."""

"""Plain-text and JSON renderings of service results for the CLI."""

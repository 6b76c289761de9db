"""Reading a git repository the way the console does: running git (``cmd``), GTO's tag names
(``gto_tags``), a repository's stages (``gto_stages``) and its YAML files (``yamlread``).

Not a backend behind a port: the config, the audit anchor, the services, the shared workspace
and the backends all use it, so it sits below them all (docs/plugins.md, "The console's layers")."""

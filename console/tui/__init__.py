"""The Textual console: screens render what console.services return; nothing here does I/O."""

"""Small shared utilities: the command-line convention, atomic file writes, and where files live."""

"""Command groups: thin wrappers that parse options, call the runtime and print."""

"""The agent rules of agent-tasks: auto-tag, auto-link, and the optional Claude summary."""

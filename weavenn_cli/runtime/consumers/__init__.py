"""Event consumers (mcp-sync, git-auto-commit, agent-tasks, n8n-workflows) and their runner."""

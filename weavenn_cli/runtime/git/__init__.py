"""The vault's git repository: status, history, diffs, commits, push and pull."""

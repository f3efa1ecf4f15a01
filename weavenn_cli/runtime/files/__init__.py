"""Vault notes: one service interface, three implementations (disk, Obsidian REST API, remote)."""

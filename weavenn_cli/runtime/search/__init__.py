"""Search over the vault's shadow cache: one service interface, local and remote implementations."""

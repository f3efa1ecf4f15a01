"""The vault: parsing notes, the shadow cache, the watcher."""

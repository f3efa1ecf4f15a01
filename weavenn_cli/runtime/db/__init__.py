"""Database access: typed models, engines and sessions for SQLite and PostgreSQL."""

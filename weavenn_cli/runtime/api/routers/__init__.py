"""FastAPI routers, one module per service."""

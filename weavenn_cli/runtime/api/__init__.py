"""The HTTP API: one FastAPI application factory for the monolith and each extracted service."""

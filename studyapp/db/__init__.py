"""Persistence: declarative base, models, session factory and Alembic migrations."""

"""Shardline's Celery side: the app, its tasks, beat schedules and the ``shardline`` CLI."""

from workers.app import app

__all__ = ["app"]

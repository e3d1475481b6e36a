"""Shardline's shared package: importable by workers and by client services alike."""

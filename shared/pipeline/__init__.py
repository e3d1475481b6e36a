"""The run's stages as plain functions; Celery tasks in ``workers/`` only call and retry them.

One module per stage: :mod:`start`, :mod:`plan`, :mod:`upload`, :mod:`create`, :mod:`poll`,
:mod:`collect`, :mod:`merge`, plus :mod:`cancel` and :mod:`progress`. Every stage reads the
run's records first and does only what is still to do, so running one twice is harmless.
"""

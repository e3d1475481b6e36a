"""A run's state, in one place: what was asked (``spec``), what was recorded (``records``,
``states``), where it lives (``layout``), typed access to it (``store``) and how runs are
found by id (``registry``).
"""

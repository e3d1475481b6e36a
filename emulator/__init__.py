"""A local, faithful Gemini File API + Batch API server, for development, tests and demos.

Run it with ``python -m emulator`` (or ``shardline emulator``), or in-process::

    from emulator import EmulatorConfig, create_app
    app = create_app(EmulatorConfig(time_scale=600, keep_order=True))

Point a client at it with ``genai.Client(api_key="any", http_options={"base_url": url})``.
Wire behaviour follows /work/shared/reference/gemini-wire-protocol.md; faults and limits are
described in :mod:`emulator.faults`, the admin API in :mod:`emulator.admin`.
"""

from emulator.app import create_app
from emulator.config import EmulatorConfig
from emulator.faults import FaultConfig

__all__ = ["EmulatorConfig", "FaultConfig", "create_app"]

"""Every Shardline task, registered on import (the app's ``include``)."""

from workers.tasks import run, shard

__all__ = ["run", "shard"]

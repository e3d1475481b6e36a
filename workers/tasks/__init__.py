"""Every Shardline task, registered on import (the app's ``include``)."""

from workers.tasks import maintenance, run, shard

__all__ = ["maintenance", "run", "shard"]

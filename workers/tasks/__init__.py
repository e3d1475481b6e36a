"""Every Shardline task, registered on import (the app's ``include``)."""

from workers.tasks import maintenance, periodic, run, shard

__all__ = ["maintenance", "periodic", "run", "shard"]

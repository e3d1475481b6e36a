"""``python -m workers`` is the ``shardline`` command."""

from workers.cli import main

raise SystemExit(main())

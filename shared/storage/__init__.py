"""Object storage: one interface over local directories, S3, GCS and memory.

>>> storage = open_storage("memory://doc")
>>> with storage.open_write("a/x.txt") as writer:
...     _ = writer.write(b"hello\\n")
>>> storage.read_bytes("a/x.txt")
b'hello\\n'
>>> [info.key for info in storage.list("a/")]
['a/x.txt']
"""

from shared.storage.base import ObjectInfo, Storage
from shared.storage.local import LocalStorage
from shared.storage.obstore_backend import ObstoreStorage
from shared.storage.uri import StorageOptions, join_uri, open_storage, split_uri

__all__ = [
    "LocalStorage",
    "ObjectInfo",
    "ObstoreStorage",
    "Storage",
    "StorageOptions",
    "join_uri",
    "open_storage",
    "split_uri",
]

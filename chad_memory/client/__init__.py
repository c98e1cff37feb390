"""A Python client for the chad-memory service: the stores' methods, over HTTP.

```python
from chad_memory.client import ChadMemoryClient

with ChadMemoryClient("http://127.0.0.1:8000", api_key) as client:
    run = client.save_run(RunCreate(actor="ignored", name="demo"))
```
"""

from chad_memory.client.aio import AsyncChadMemoryClient
from chad_memory.client.sync import ChadMemoryClient
from chad_memory.client.transport import RetryPolicy

__all__ = ["AsyncChadMemoryClient", "ChadMemoryClient", "RetryPolicy"]

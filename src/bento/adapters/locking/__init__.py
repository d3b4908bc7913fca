"""StreamLock adapters: in-process (asyncio), and distributed ones (redis)."""

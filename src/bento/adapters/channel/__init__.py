"""Streaming channel adapters (ChannelPort): in-memory and Redis pub/sub.

`bento.adapters.channel.memory` needs nothing; `bento.adapters.channel.redis` needs
the `redis` package (extra: bento-ddd[redis]) and says so when it is missing."""

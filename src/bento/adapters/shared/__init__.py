"""What several technology packages share, public so that adapters outside this repository can
use it too: the delivery loop (retries, dead letters, deadlines), lifecycle, bus counters,
reconnect callbacks, the settings base, the lazy client import, channel fan-out and the
in-process stream lock. Imports no client library and no technology package."""

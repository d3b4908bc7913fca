"""The orders demo service (`bento demo`): commands, aggregates, subscribers, an event
chain through the event store, a projection and queries, all on embedded defaults."""

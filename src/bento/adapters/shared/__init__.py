"""MessageBus adapters: inprocess, rabbitmq, pulsar, redis, nats."""

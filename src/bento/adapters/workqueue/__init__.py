"""Work queues (seed 000's MQ): named durable queues of JSON objects shared by competing consumers.

`bento.adapters.workqueue.redis` needs the `redis` package (extra: bento-ddd[redis]); the RabbitMQ
work queue is `bento.adapters.messaging.rabbitmq.RabbitMQWorkQueue`."""

"""RabbitMQ: the connection, later the outbox relay, topology and consumers. See notes/rabbitmq.md."""

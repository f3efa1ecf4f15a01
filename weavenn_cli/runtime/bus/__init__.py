"""Event bus: outbox and inbox, transports (RabbitMQ and embedded), relay, consumer runner."""

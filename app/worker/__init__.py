"""The consumer process, ``python -m app.worker``: domain messages from RabbitMQ, applied exactly once each.

Why a process of its own and not a task in the app: consumers must keep working while the API is being deployed,
scale apart from it (the number of consumers is not the number of uvicorn workers), and fail alone; the stack starts,
stops, freezes and kills it like any other service. See notes/rabbitmq.md, "The worker and its inbox".
"""

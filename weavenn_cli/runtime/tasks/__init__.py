"""Tasks: one service interface, a database implementation and a remote (HTTP) one.

Every task write goes through a `TaskService`; the database implementation writes the
`task.*` event to the outbox in the transaction of the change.
"""

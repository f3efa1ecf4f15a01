"""Strangler-fig rollouts: which users an extracted service serves, and how that changes.

`cohorts` decides who is on which side, `store` keeps the percentages and their audit trail in
the database, `stats` counts what the gateways saw, `breaker` protects users from a failing
new side, `ramp` raises a percentage step by step while watching the new side.
"""

"""Load test of a running Engram: Locust users of several tenants (`make load`)."""

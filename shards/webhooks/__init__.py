"""Webhook subscriptions and the deliveries owed to them (base.py names the role)."""

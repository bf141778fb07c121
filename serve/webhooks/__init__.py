"""Webhooks: subscriptions' routes (serve/routes/webhooks.py), where they may point
(destinations.py), and the dispatcher that delivers the shards' change events (dispatcher.py)."""

"""Live changes: AC webhooks per connection, the receiver, the per-tenant change feed, the bus events."""

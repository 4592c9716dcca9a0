"""The long-running in-cluster controller: poll, webhook, leader election, health and metrics."""

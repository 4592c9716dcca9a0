"""Releases: canonical, content-addressed bundles of one app, and readable diffs of them."""

"""Conformance suite: one set of tests for every ``ChainConnector`` implementation.

Each test runs once per harness in :data:`conformance.harness.HARNESSES`; adding the
RPC/Anvil connector means adding one harness, not new tests.
"""

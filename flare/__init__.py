"""Flare: federated learning coordinated on Ethereum, with model traffic on IPFS."""

__version__ = "0.1.0"

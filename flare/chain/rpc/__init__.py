"""The JSON-RPC client: transport, fees, nonces, signed transactions, deployments."""

"""The live control plane: HTTP API, control loop, auth."""

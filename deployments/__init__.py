"""Model side of Primscene: what a pipeline takes and returns, and (later) the Ray Serve deployments."""

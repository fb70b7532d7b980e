"""Model side of Primscene: the contract with the service (`contract`), the detector and scene
classifier runtimes, and their Ray Serve deployments (`detector`, `classifier`). Imports nothing
of the HTTP app (tests/unit/test_import_layers.py)."""

"""The living cluster: health checks (Docker's state machine and timings), the orchestrator's
decisions as pure functions of the model, and the loop that carries them out."""

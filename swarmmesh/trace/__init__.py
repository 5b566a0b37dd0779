"""``swarmmesh trace``: one connection's path through the cluster, hop by hop, as the
model predicts it and as the real packets took it (pure parts; the live side is
:mod:`swarmmesh.runs.tracing`)."""

"""The emulated machine: the Mininet topology of a cluster, its nodes and tasks, the running
testbed (controller process, network, teardown), runtime records and cleanup."""

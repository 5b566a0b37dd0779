"""The controller: the os-ken app that carries the data plane's flows to each node's switch,
their translation into OpenFlow 1.3, and the unix-socket relay to the switches."""

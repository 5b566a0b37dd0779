"""The user interfaces: the `swarmmesh` command and the interactive Mininet shell with
Swarm's service/task/node commands."""

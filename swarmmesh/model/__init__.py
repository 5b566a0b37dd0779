"""The model: one cluster (nodes, networks, services, tasks, addresses) as plain data.

Everything else is derived from it: the topology, the controller's flows, the DNS
answers, the orchestrator's decisions.  It needs no root and imports nothing of the
layers above it.  Modules: ``objects`` (the data classes and the address plan),
``healthcheck`` (a service's check and Docker's defaults), ``stack`` (a stack file
parsed and validated), ``placement`` (specs to nodes and placed tasks), ``cluster``
(the whole, its queries, run-time changes and JSON), ``errors``.
"""

from swarmmesh.model.cluster import Cluster
from swarmmesh.model.errors import InvalidConfigError
from swarmmesh.model.healthcheck import HealthCheck
from swarmmesh.model.objects import (DNSRR_INGRESS_ERROR, DOCKER_VERSION, INGRESS_NETWORK, INGRESS_SUBNET,
                                     INGRESS_VNI, UNDERLAY_SUBNET, Client, Network, Node,
                                     PublishedPort, Service, Task, docker_mac)

__all__ = ["Cluster", "InvalidConfigError", "HealthCheck", "DNSRR_INGRESS_ERROR", "DOCKER_VERSION",
           "INGRESS_NETWORK", "INGRESS_SUBNET", "INGRESS_VNI", "UNDERLAY_SUBNET", "Client",
           "Network", "Node", "PublishedPort", "Service", "Task", "docker_mac"]

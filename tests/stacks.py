"""Stack files shared by the unit and integration tiers."""

# 3 nodes; networks ``front`` and ``back``:
#   web     3 replicas  front          (vip)
#   client  3 replicas  front          (one per node)
#   db      2 replicas  back           (dnsrr)
#   api     1 replica   front + back   (vip), publishes 8000:80
EASTWEST = {
    "networks": {"front": {}, "back": {}},
    "services": {
        "web": {"deploy": {"replicas": 3}, "networks": ["front"]},
        "client": {"deploy": {"replicas": 3}, "networks": ["front"]},
        "db": {"deploy": {"replicas": 2, "endpoint_mode": "dnsrr"}, "networks": ["back"]},
        "api": {"deploy": {"replicas": 1}, "networks": ["front", "back"],
                "ports": ["8000:80"]},
    },
}

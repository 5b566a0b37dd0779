# Quick start:  sudo make demo   |   sudo make test
# Every target runs set-up first; set-up is idempotent.

VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
APT_PKGS := mininet openvswitch-switch nftables ethtool iproute2 tcpdump iputils-ping \
            python3-venv python3-yaml procps
OVS_CTL := /usr/share/openvswitch/scripts/ovs-ctl

.PHONY: setup apt ovs venv demo test unit integration benchmark clean distclean

setup: apt ovs venv

apt:
	@missing=""; for p in $(APT_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "setup: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo "setup: system packages present"; fi

# The testbed runs one vswitchd per swarm node inside the node's namespace;
# the system Open vSwitch is started too, for `mn` and for ovs-vsctl users.
ovs:
	@if ovs-vsctl --timeout=3 show >/dev/null 2>&1; then echo "setup: Open vSwitch running"; \
	else $(OVS_CTL) start --system-id=random >/dev/null && echo "setup: Open vSwitch started"; fi

$(STAMP): requirements.txt setup.py
	@test -x $(PY) || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP)

demo: setup
	$(VENV)/bin/swarmmesh run routing_mesh --nodes 3 --replicas 2 --requests 30

test: setup
	$(PY) -m pytest tests -q -ra

unit: venv
	$(PY) -m pytest tests/unit -q

integration: setup
	$(PY) -m pytest tests/integration -q -ra

benchmark: setup
	$(VENV)/bin/swarmmesh run overhead

# Remove what a killed run left behind: by recorded PID and name only.
clean:
	@if [ -x $(PY) ]; then $(PY) -m swarmmesh.runtime; else echo "clean: nothing to do (no venv)"; fi

distclean: clean
	rm -rf $(VENV) *.egg-info

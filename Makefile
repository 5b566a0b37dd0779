# Quick start:  sudo make demo   |   sudo make test
# Every target runs set-up first; set-up is idempotent.

VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
# The system packages: one declared list (package, group, programs, why), read here,
# by `swarmmesh doctor` and by the code's tool checks. Set-up installs core + clients.
DEPS     := swarmmesh/machine/debian-packages.txt
APT_PKGS := $(shell awk '!/^\#/ && NF && ($$2 == "core" || $$2 == "clients") {print $$1}' $(DEPS))
OVS_CTL := /usr/share/openvswitch/scripts/ovs-ctl

.PHONY: setup apt ovs venv doctor demo test unit integration docker-test benchmark clean \
        distclean setup-docker

setup: apt ovs venv

apt:
	@missing=""; for p in $(APT_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "setup: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo "setup: system packages present"; fi

# --engine docker (real Swarm nodes): the docker group, Debian's docker.io (moby 20.10). No
# recommends (needrestart, apparmor); the machine's own Docker service is neither started
# nor used: every node runs its own dockerd under the run's state folder.
DOCKER_PKGS := $(shell awk '!/^\#/ && NF && $$2 == "docker" {print $$1}' $(DEPS))
setup-docker: setup
	@missing=""; for p in $(DOCKER_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "setup-docker: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "setup-docker: docker packages present"; fi
	@$(VENV)/bin/swarmmesh doctor --docker | grep -A1 -E '^[a-z]+ +(docker|kernel: cgroup2)' || true

# The testbed runs one vswitchd per swarm node inside the node's namespace;
# the system Open vSwitch is started too, for `mn` and for ovs-vsctl users.
ovs:
	@if ovs-vsctl --timeout=3 show >/dev/null 2>&1; then echo "setup: Open vSwitch running"; \
	else $(OVS_CTL) start --system-id=random >/dev/null && echo "setup: Open vSwitch started"; fi

# The experiments are plug-ins (entry points made from experiments/*.py at install time):
# a new one is registered by installing again.
$(STAMP): requirements.txt setup.py pyproject.toml $(wildcard experiments/*.py)
	@test -x $(PY) || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	@rm -rf *.egg-info build/lib   # an in-tree build's metadata would shadow the editable install's
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP)

# One line per item (kernel features, packages, Open vSwitch, Python); fails if
# something required is missing.
doctor: setup
	@$(VENV)/bin/swarmmesh doctor

demo: doctor
	$(VENV)/bin/swarmmesh run routing_mesh --nodes 3 --replicas 2 --requests 30

test: doctor
	$(PY) -m pytest tests -q -ra

unit: venv
	$(PY) -m pytest tests/unit -q

integration: doctor
	$(PY) -m pytest tests/integration -q -ra

# The Mininet CI container (Dockerfile): both tiers in Debian 12, as the hosted CI runs them.
docker-test:
	docker build -t swarmmesh-test .
	docker run --rm --privileged -v /lib/modules:/lib/modules:ro swarmmesh-test make test

# The speed targets in one run (mesh latency, connections/s, iperf3, build and teardown against
# size, memory; docs/measurements.md); BENCH_ARGS adds flags, e.g. BENCH_ARGS='--userspace-tso --sizes 3x2,50x10'.
benchmark: setup
	$(VENV)/bin/swarmmesh run benchmark $(BENCH_ARGS)

# Remove what a killed run left behind: by recorded PID and name only.
clean:
	@if [ -x $(PY) ]; then $(PY) -m swarmmesh.testbed.runtime; else echo "clean: nothing to do (no venv)"; fi

distclean: clean
	rm -rf $(VENV) *.egg-info

# ---- vm-test: the kernel datapath (openvswitch module) in a Debian 12 guest under QEMU (TCG) ----
# Installs the `vm` group of swarmmesh/machine/debian-packages.txt, builds the guest image once
# (cached in /var/cache/swarmmesh-vm/<recipe hash>/), boots it and runs the tests of
# vm/tests.txt there (vm/test); `make vm-test VM_CMD='swarmmesh run mesh_overhead --quiet'`
# runs that command in the guest instead (vm/run). Output in build/vm-test/ or build/vm/<stamp>/.
VM_PKGLIST := swarmmesh/machine/debian-packages.txt

.PHONY: vm-test vm-apt

vm-apt:
	@missing=""; for p in $$(awk '!/^#/ && $$2 == "vm" {print $$1}' $(VM_PKGLIST)); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "vm-test: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "vm-test: vm packages present"; fi

# VM_CMD, given on make's command line, reaches the recipe through the environment (no quoting issues).
vm-test: vm-apt
	@if [ -n "$$VM_CMD" ]; then vm/run "$$VM_CMD"; else vm/test; fi

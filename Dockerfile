# The Mininet CI container: Debian 12, the declared system packages, the pinned Python
# requirements and the project, so that `make test` runs in it as on a user's VM.
#   docker build -t swarmmesh-test .
#   docker run --rm --privileged -v /lib/modules:/lib/modules:ro swarmmesh-test   (= make docker-test)
# --privileged: Mininet makes namespaces, veths and VXLAN devices, OVS opens its datapath.
# /lib/modules: lets the host's openvswitch module load (the kernel datapath); without it
# the testbed falls back to userspace OVS, and `make test` says which one ran.
FROM debian:12

ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
WORKDIR /src

# The core and clients groups of the declared list, exactly what `make setup` installs.
COPY swarmmesh/machine/debian-packages.txt /tmp/debian-packages.txt
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      $(awk '!/^#/ && NF && ($2 == "core" || $2 == "clients") {print $1}' /tmp/debian-packages.txt) \
 && rm -rf /var/lib/apt/lists/*

# The pinned Python requirements in the project's venv (with system site packages, for
# Debian's Mininet), then the project itself: `make venv`, as set-up does it.
COPY . /src
RUN make venv

CMD ["make", "test"]

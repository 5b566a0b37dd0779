#!/bin/bash
# Runs INSIDE the guest, started by its PID 1 (vm/guest-init) from the read-only share of the
# project (/mnt/src). Puts the project on the guest's own disk, makes the set-up a user
# makes (`make setup`), then runs the command vm/run wrote to /mnt/out/cmd, from the
# project's folder with the venv first on PATH. Copies new results/ folders back to /mnt/out.
set -u
P=/root/swarmmesh
cd /
echo "vm: guest up ($(uname -r), $(nproc) vCPU, $(free -m | awk '/^Mem:/ {print $2}') MB)"

# The project onto the guest's disk: tests write results/, .pytest_cache and run folders.
# The image's .venv (made by `make venv` at image build) stays; the host's is not copied.
# The host's results/ run folders are left out (only the tracked ones are copied).
tar -C /mnt/src --exclude=./.venv --exclude=./.pytest_cache --exclude=__pycache__ \
    --exclude='*.egg-info' --exclude=./results --exclude=./build -cf - . | tar -C $P -xf -
mkdir -p $P/results
[ -d /mnt/src/results/reference ] && cp -a /mnt/src/results/reference $P/results/
[ -f /mnt/src/results/README.md ] && cp -a /mnt/src/results/README.md $P/results/

# The image is keyed by requirements.txt and setup.py, so its venv is current by
# construction; the copied files' host mtimes would make make re-run pip (offline here).
touch $P/.venv/.installed
cd $P
git config --global --add safe.directory $P 2>/dev/null   # the commit every summary records

# The user's set-up, as on a fresh VM: packages present, Open vSwitch started (ovs-ctl
# loads the openvswitch module: the kernel datapath).
make setup || { echo "vm: make setup failed"; exit 3; }
if [ -d /sys/module/openvswitch ]; then echo "vm: openvswitch kernel module loaded"
else echo "vm: WARNING: no openvswitch kernel module: runs will fall back to netdev"; fi

export PATH=$P/.venv/bin:$PATH
touch /tmp/.vm-start
echo "vm: running: $(cat /mnt/out/cmd)"
t0=$(date +%s)
bash -c "$(cat /mnt/out/cmd)"
rc=$?
echo "vm: command exited $rc after $(( $(date +%s) - t0 )) s"

# On failure, bring back pytest's temp folders too (every testbed's run folder: controller
# and vswitchd logs, flow dumps), which die with the guest otherwise.
if [ $rc -ne 0 ] && [ -d /tmp/pytest-of-root ]; then
  tar -czf /mnt/out/pytest-tmp.tgz -C /tmp pytest-of-root 2>/dev/null &&
    echo "vm: pytest's temp folders in pytest-tmp.tgz"
fi

# Bring back what the command wrote under results/ (experiment run folders).
new=$(find results -mindepth 2 -maxdepth 2 -type d -newer /tmp/.vm-start 2>/dev/null)
if [ -n "$new" ]; then
  tar -cf - $new | tar -C /mnt/out -xf -
  for d in $new; do
    dp=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("datapath"))' $d/summary.json 2>/dev/null)
    echo "vm: brought back $d (datapath: ${dp:-no summary.json})"
  done
fi
exit $rc

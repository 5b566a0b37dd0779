#!/bin/bash
# Build (once) the Debian 12 guest that runs the tests on the kernel datapath, and print
# the folder that holds it: rootfs.ext4, vmlinuz, initrd.img.
#
# The image is cached outside the repo, under a hash of its recipe (this script, the guest's
# init, the core + clients + docker lines of swarmmesh/machine/debian-packages.txt, requirements.txt,
# setup.py and pyproject.toml): change any of them and the next run builds a new one. The
# project's code is NOT in the image (vm/run shares it at run time): no rebuild for code.
#
#   vm/build-image.sh            build if missing, print the cache folder
#   SWARMMESH_VM_CACHE=DIR       cache root (default /var/cache/swarmmesh-vm)
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PKGLIST=$REPO/swarmmesh/machine/debian-packages.txt
CACHE_ROOT=${SWARMMESH_VM_CACHE:-/var/cache/swarmmesh-vm}
SUITE=bookworm
# The same mirror the host's apt uses (debootstrap needs one URL).
MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}

die() { echo "vm/build-image: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot)"
for p in debootstrap mkfs.ext4 unshare; do command -v $p >/dev/null || die "$p missing: run 'make vm-test' (it installs the vm packages) or apt-get install it"; done
[ -f "$PKGLIST" ] || die "$PKGLIST missing"

# What `make setup` installs on a user's VM: the core and clients groups.
GUEST_PKGS=$(awk '!/^#/ && NF && ($2 == "core" || $2 == "clients") {print $1}' "$PKGLIST" | sort -u | tr '\n' ' ')
[ -n "$GUEST_PKGS" ] || die "no core/clients packages in $PKGLIST"
# What `make setup-docker` adds (real Swarm nodes, --engine docker), without recommends.
DOCKER_PKGS=$(awk '!/^#/ && NF && $2 == "docker" {print $1}' "$PKGLIST" | sort -u | tr '\n' ' ')

KEY=$( { cat "$0" "$REPO/vm/guest-init"; echo "$GUEST_PKGS $DOCKER_PKGS"
         cat "$REPO/requirements.txt" "$REPO/setup.py" "$REPO/pyproject.toml" 2>/dev/null || true; } \
       | sha256sum | cut -c1-16)
OUT=$CACHE_ROOT/$KEY
if [ -f "$OUT/done" ]; then echo "$OUT"; exit 0; fi

mkdir -p "$CACHE_ROOT"
# One build at a time (two `make vm-test` at once wait for each other).
exec 9>"$CACHE_ROOT/.lock"
flock 9
if [ -f "$OUT/done" ]; then echo "$OUT"; exit 0; fi

# chroot (~1 GB) + image (~1.5 GB) exist together for a moment.
avail_mb=$(df -Pm "$CACHE_ROOT" | awk 'NR==2 {print $4}')
[ "$avail_mb" -ge 4000 ] || die "only ${avail_mb} MB free in $CACHE_ROOT; the build needs ~4000 MB (image ~1.5 GB). Free space or set SWARMMESH_VM_CACHE."

WORK=$(mktemp -d "$CACHE_ROOT/build.XXXXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT; trap 'exit 143' TERM       # so that cleanup runs on Ctrl-C / kill too
ROOT=$WORK/root
LOG=$WORK/build.log
echo "vm/build-image: building the guest image $KEY (first time only, ~3-5 min; log $LOG)" >&2
t0=$(date +%s)

# Run a command in the chroot in a private mount namespace: the /proc, /sys and /dev mounts
# die with it, so nothing is ever left mounted on the host, even on Ctrl-C.
# A clean environment: the host's PIP_FIND_LINKS etc. name paths the chroot lacks.
in_root() {
  unshare --mount --propagation private -- bash -c '
    root=$1; shift
    mount -t proc proc "$root/proc" && mount -t sysfs sys "$root/sys" && mount --rbind /dev "$root/dev"
    exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
         DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 \
         chroot "$root" "$@"' in_root "$ROOT" "$@"
}

debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$ROOT" "$MIRROR" >>"$LOG" 2>&1 \
  || die "debootstrap failed, see the tail of its log:$(echo; tail -20 "$LOG")"
# The host's sources (updates + security too), and no service may start inside the chroot.
cp /etc/apt/sources.list.d/debian.sources "$ROOT/etc/apt/sources.list.d/" 2>/dev/null && rm -f "$ROOT/etc/apt/sources.list"
printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"; chmod +x "$ROOT/usr/sbin/policy-rc.d"

{
  in_root apt-get update -qq
  # As `make setup` does on a user's VM (apt's defaults, recommends included) ...
  in_root apt-get install -y -qq $GUEST_PKGS
  [ -z "$DOCKER_PKGS" ] || in_root apt-get install -y -qq --no-install-recommends $DOCKER_PKGS
  # ... then what only the guest needs: its kernel (modules openvswitch, ip_vs, nf_nat,
  # sch_netem) and the initramfs that finds the virtio disk. No firmware: no hardware.
  in_root apt-get install -y -qq --no-install-recommends linux-image-amd64 initramfs-tools
  in_root apt-get clean
} >>"$LOG" 2>&1 || die "apt in the chroot failed, see the tail of its log:$(echo; tail -20 "$LOG")"

# The venv exactly as `make setup` makes it (the project's own `make venv`), at the path
# where vm/run puts the project at run time: /root/swarmmesh. The source copied for it is
# removed afterwards (only .venv stays), so the run-time copy is the only code in the guest.
# pip must trust what the host's pip trusts (its CA bundle, e.g. a proxy's CA); the guest's
# own trust store is left as Debian ships it.
mkdir -p "$ROOT/root/swarmmesh"
cp "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$ROOT/tmp/host-ca.pem"
tar -C "$REPO" --exclude=./.venv --exclude=./.git --exclude='./results/*' --exclude=__pycache__ \
    --exclude='*.egg-info' -cf - . | tar -C "$ROOT/root/swarmmesh" -xf -
in_root env PIP_CERT=/tmp/host-ca.pem make -C /root/swarmmesh venv >>"$LOG" 2>&1 \
  || die "make venv in the chroot failed, see the tail of its log:$(echo; tail -20 "$LOG")"
find "$ROOT/root/swarmmesh" -mindepth 1 -maxdepth 1 ! -name .venv ! -name "*.egg-info" -exec rm -rf {} +
rm -f "$ROOT/tmp/host-ca.pem"

# PID 1 of the guest (see that file), and a host name for the logs.
install -m 755 "$REPO/vm/guest-init" "$ROOT/sbin/swarmmesh-vm-init"
echo swarmmesh-vm > "$ROOT/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 swarmmesh-vm\n' > "$ROOT/etc/hosts"    # ovs-ctl: hostname -f
mkdir -p "$ROOT/mnt/src" "$ROOT/mnt/out"

mkdir -p "$WORK/out"
cp -L "$ROOT/vmlinuz" "$WORK/out/vmlinuz" && cp -L "$ROOT/initrd.img" "$WORK/out/initrd.img" \
  || die "no kernel/initrd in the chroot (linux-image-amd64 install failed?)"
# ext4 straight from the folder (mkfs.ext4 -d): no loop device, no mount. Room to spare for
# the tests' writes (the disk is opened with snapshot=on, so the image itself never changes).
size_mb=$(( $(du -sm "$ROOT" | cut -f1) * 13 / 10 + 1024 ))
truncate -s ${size_mb}M "$WORK/out/rootfs.ext4"
mkfs.ext4 -q -F -L swarmvm -d "$ROOT" "$WORK/out/rootfs.ext4" >>"$LOG" 2>&1 \
  || die "mkfs.ext4 -d failed, see $LOG"
cp "$LOG" "$WORK/out/build.log"
echo "$GUEST_PKGS" > "$WORK/out/packages.txt"
in_root dpkg-query -W -f='${Package} ${Version}\n' > "$WORK/out/dpkg.txt" 2>/dev/null || true
touch "$WORK/out/done"
rm -rf "$OUT"; mv "$WORK/out" "$OUT"
# Older images (other recipes) are left for other checkouts; remove them by hand if needed.
echo "vm/build-image: image $KEY built in $(( $(date +%s) - t0 )) s, $(du -sh --apparent-size "$OUT/rootfs.ext4" | cut -f1) ($(du -sh "$OUT/rootfs.ext4" | cut -f1) on disk)" >&2
echo "$OUT"

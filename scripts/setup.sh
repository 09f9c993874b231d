#!/usr/bin/env bash
# setup.sh -- installs everything udaxfs needs to build and test on Debian bookworm.
#
# Idempotent: when every package is already installed it does nothing (no network).
# Must run as root (or with sudo available). Quiet on success, errors stay visible.
set -euo pipefail

PACKAGES=(
  # toolchain and build
  build-essential cmake ninja-build pkg-config
  # FUSE
  libfuse3-dev fuse3
  # FUSE over io_uring (fs/fuse/uring_transport.cc)
  liburing-dev
  # persistent memory (PMDK, ndctl/daxctl)
  libpmem2-dev libpmem-dev libndctl-dev libdaxctl-dev
  # ISA-L (CRC32C), JSON, CLI parsing
  libisal-dev nlohmann-json3-dev libcli11-dev
  # man pages (man/*.scd, rendered to roff at build time) and man(1) to check them
  scdoc man-db groff-base
  # the Debian package (scripts/package.sh: CPack, dpkg-shlibdeps) and the check of the
  # patrol's systemd units (systemd-analyze verify)
  dpkg-dev systemd
  # unit tests and benchmarks
  libgtest-dev googletest libbenchmark-dev fio
  # mounted-filesystem test suite (tests/fs): python helpers, setpriv/findmnt, xxd ...
  python3 util-linux procps psmisc coreutils attr acl xxd kmod
  # fuzzing (tests/fuzz, scripts/fuzz.sh): clang with its libFuzzer runtime
  clang libclang-rt-14-dev
  # the pmem lab (scripts/lab): QEMU (TCG) booting Debian's kernel with NVDIMM/memmap pmem,
  # an initramfs of busybox-static, ndctl/daxctl and xfs in the guest, strace to record
  # the daemon's signals
  qemu-system-x86 linux-image-amd64 busybox-static cpio xz-utils ndctl daxctl xfsprogs strace
  e2fsprogs
  # ... and the kernel's nfit_test modules for `ndctl inject-error` (scripts/lab/nfit_test.sh),
  # built from Debian's kernel source against the headers of the packaged kernel
  linux-source-6.1 linux-headers-amd64 bc flex bison libelf-dev libssl-dev
)

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "setup.sh: must run as root (or have sudo)" >&2
    exit 1
  fi
fi

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [[ $status == installed ]] || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup.sh: all ${#PACKAGES[@]} packages already installed"
fi

# FUSE needs /dev/fuse; load the module if it is missing (a container may not allow it).
if [[ ! -e /dev/fuse ]]; then
  "${SUDO[@]}" modprobe fuse 2>/dev/null || echo "setup.sh: warning: /dev/fuse missing and modprobe fuse failed" >&2
fi
exit 0

#!/usr/bin/env bash
# Installs everything vpncluster and its tests need on a fresh Debian machine:
# Debian packages (iproute2, iperf3, SoftEther's real server/client/vpncmd as
# the yardstick, Prometheus to scrape a test cluster) and the Python package itself with its test extras (pytest,
# mypy and the stubs it reads).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(iproute2 iperf3 iputils-ping ethtool procps
              # nft: bench/failover.py cuts a member's port with a rule in its own netns
              nftables
              softether-vpnserver softether-vpnclient softether-vpncmd
              # tests/integration/test_prometheus.py: a real Prometheus scrapes a cluster
              prometheus)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "setup: not root, cannot install Debian packages: ${missing[*]} (tests that need them will skip)" >&2
    fi
fi
# Debian's packages may start SoftEther as a service on machines with an init;
# our tests run their own instances, so a packaged one must not hold the ports.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet softether-vpnserver 2>/dev/null; then
    systemctl stop softether-vpnserver softether-vpnclient 2>/dev/null || true
fi
# Likewise a packaged Prometheus (the test starts its own from a temp dir).
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl stop prometheus 2>/dev/null || true
fi

# Always (fast when satisfied): picks up dependencies added to pyproject.toml.
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -e ".[test]"

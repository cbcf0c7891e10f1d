#!/usr/bin/env bash
# Runs the foreign-architecture release binaries under qemu-user: `--version`,
# `check-config` on a configuration that needs no external file (and on a broken one,
# which must be refused with exit 78), and `io-gateway demo`: the round trip through the
# built-in IO sandbox over mutual TLS (test certificates, messages posted over HTTP and
# followed to their final states). The static musl build runs natively.
#
# Needs: the binaries (packaging/build-release.sh first), qemu-user-static and the
# cross sysroots in /usr/<triple> (libc6-*-cross), which qemu's -L points at.
# Usage:
#   packaging/qemu-smoke.sh                               # every target built
#   packaging/qemu-smoke.sh armv7-unknown-linux-gnueabihf # some targets
# Exits non-zero, with the failing step's output, if any step fails.
set -euo pipefail
cd "$(dirname "$0")/.."

DEFAULT_TARGETS=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf x86_64-unknown-linux-musl)
DEMO_TIMEOUT=${DEMO_TIMEOUT:-900}
if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=("${DEFAULT_TARGETS[@]}")
fi

# The command prefix that runs TARGET's binaries on this machine.
runner() {
    case "$1" in
        aarch64-unknown-linux-gnu) echo "qemu-aarch64-static -L /usr/aarch64-linux-gnu" ;;
        armv7-unknown-linux-gnueabihf) echo "qemu-arm-static -L /usr/arm-linux-gnueabihf" ;;
        x86_64-unknown-linux-gnu | x86_64-unknown-linux-musl) echo "" ;;
        *) echo "error: no runner known for $1" >&2; return 1 ;;
    esac
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A configuration check-config accepts with no file from outside: a key file and the
# database in a temp dir, IO over plain http on loopback (no client certificate).
write_config() {
    local dir=$1
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/io-tari.key"
    local client_key_sha256
    client_key_sha256=$(head -c 32 /dev/urandom | sha256sum | cut -d' ' -f1)
    cat >"$dir/gateway.toml" <<TOML
[[institutions]]
name = "Comune di Prova"
fiscal_code = "80000000010"
  [[institutions.services]]
  name = "tari"
  service_id = "01JSMOKETESTSERVICETARI000"
  primary_key = { file = "$dir/io-tari.key" }

[[clients]]
name = "smoke"
key_sha256 = "$client_key_sha256"
services = ["tari"]

[io]
base_url = "http://127.0.0.1:9/api/v1"

[local_api]
listen = "127.0.0.1:0"

[storage]
path = "$dir/queue.db"
TOML
    # The same, broken twice: a missing key file and a bad fiscal code.
    sed -e "s|$dir/io-tari.key|$dir/missing.key|" -e 's/80000000010/80000000011/' \
        "$dir/gateway.toml" >"$dir/broken.toml"
}

# step NAME LOG COMMAND...: runs COMMAND, output to LOG; on failure shows it and exits.
step() {
    local name=$1 log=$2
    shift 2
    local start=$SECONDS
    if "$@" >"$log" 2>&1; then
        printf '  ok    %-40s %4ds\n' "$name" $((SECONDS - start))
    else
        local status=$?
        printf '  FAIL  %-40s exit %d\n' "$name" "$status" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
}

refused_with_78() {
    local status=0
    "$@" || status=$?
    if [ "$status" -ne 78 ]; then
        echo "expected exit 78 (bad configuration), got $status"
        return 1
    fi
}

for target in "${targets[@]}"; do
    bin="target/$target/release/io-gateway"
    if [ ! -x "$bin" ]; then
        echo "error: $bin not found: run packaging/build-release.sh $target first" >&2
        exit 1
    fi
    read -r -a run <<<"$(runner "$target")"
    if [ "${#run[@]}" -gt 0 ] && ! command -v "${run[0]}" >/dev/null; then
        echo "error: ${run[0]} not found (apt-get install qemu-user-static)" >&2
        exit 1
    fi
    dir="$work/$target"
    mkdir -p "$dir"
    write_config "$dir"

    echo "== $target${run[*]:+ (under ${run[*]})}"
    step "--version" "$dir/version.log" "${run[@]}" "$bin" --version
    echo "        $(head -n1 "$dir/version.log")"
    step "check-config (good file: exit 0)" "$dir/check.log" \
        "${run[@]}" "$bin" check-config --config "$dir/gateway.toml"
    step "check-config (broken file: exit 78)" "$dir/broken.log" \
        refused_with_78 "${run[@]}" "$bin" check-config --config "$dir/broken.toml"
    step "demo (sandbox round trip over mTLS)" "$dir/demo.log" \
        env TMPDIR="$dir" timeout "$DEMO_TIMEOUT" "${run[@]}" "$bin" demo
    echo "        $(grep -c . "$dir/demo.log") lines of demo output; last: $(tail -n1 "$dir/demo.log")"
done
echo "qemu smoke tests passed: ${targets[*]}"

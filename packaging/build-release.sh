#!/usr/bin/env bash
# Release builds of io-gateway for the appliances: x86_64 and aarch64 and armv7 (glibc),
# and a fully static x86_64 (musl). Prints each binary's size and, for the glibc builds,
# the glibc floor: the highest GLIBC_x.y symbol version the binary needs, i.e. the oldest
# glibc (and distribution) it runs on.
#
# Needs: the rustup targets and Debian's cross toolchains (see .cargo/config.toml), binutils.
# Usage:
#   packaging/build-release.sh                              # every target
#   packaging/build-release.sh aarch64-unknown-linux-gnu    # some targets
#   CARGO_BUILD_JOBS=1 packaging/build-release.sh           # on a small machine
# Binaries: target/<triple>/release/io-gateway.
set -euo pipefail
cd "$(dirname "$0")/.."

DEFAULT_TARGETS=(
    x86_64-unknown-linux-gnu
    aarch64-unknown-linux-gnu
    armv7-unknown-linux-gnueabihf
    x86_64-unknown-linux-musl
)
if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=("${DEFAULT_TARGETS[@]}")
fi

installed=$(rustup target list --installed 2>/dev/null || true)
for target in "${targets[@]}"; do
    if [ -n "$installed" ] && ! grep -qx "$target" <<<"$installed"; then
        echo "error: Rust target $target is not installed: rustup target add $target" >&2
        exit 1
    fi
done

for target in "${targets[@]}"; do
    echo "== cargo build --release --target $target"
    cargo build --release --locked -p gateway --bin io-gateway --target "$target"
done

# The highest GLIBC_x.y among the versions the binary needs (readelf reads any
# architecture's ELF, unlike the host's objdump).
glibc_floor() {
    readelf -W -V "$1" | grep -o 'Name: GLIBC_[0-9.]*' | sed 's/Name: GLIBC_//' | sort -uV | tail -n1
}

echo
echo "== release binaries (the workspace's [profile.release]: fat LTO, one codegen unit, stripped)"
printf '%-32s %12s %9s  %s\n' target bytes MiB "glibc floor"
for target in "${targets[@]}"; do
    bin="target/$target/release/io-gateway"
    bytes=$(stat -c %s "$bin")
    mib=$(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1048576 }')
    case "$target" in
        *-linux-gnu*)
            floor=$(glibc_floor "$bin")
            # The symbols that set the floor: the first few, and how many.
            mapfile -t needing < <(readelf -W --dyn-syms "$bin" |
                grep -o "[A-Za-z0-9_]*@GLIBC_${floor}\b" | sed 's/@.*//' | sort -u)
            floor="GLIBC_$floor (${#needing[@]} symbols: ${needing[*]:0:4}${needing[4]:+ …})"
            ;;
        *-linux-musl*)
            if readelf -W -d "$bin" | grep -q NEEDED; then
                floor="musl, but dynamically linked?"
            else
                floor="none: static (musl)"
            fi
            ;;
        *) floor="-" ;;
    esac
    printf '%-32s %12s %9s  %s\n' "$target" "$bytes" "$mib" "$floor"
done

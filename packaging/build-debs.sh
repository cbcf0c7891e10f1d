#!/usr/bin/env bash
# Debian packages of io-gateway for amd64, arm64 and armhf (cargo-deb), each checked:
# the binary at /usr/bin/io-gateway for the right CPU, the configuration as a conffile that
# is not world-readable, the systemd unit and the sysusers entry, maintainer scripts that
# enable but never start the service on first install. On amd64 the packaged
# configuration is also run through `io-gateway check-config`: it must complain only
# about what the town must still provide (keys, certificate, local client keys).
#
# Needs: cargo-deb (cargo install cargo-deb --locked), dpkg-dev, the cross toolchains of
# .cargo/config.toml, binutils.
# Usage:
#   packaging/build-debs.sh                             # amd64, arm64, armhf
#   packaging/build-debs.sh aarch64-unknown-linux-gnu   # some targets
#   CARGO_BUILD_JOBS=1 packaging/build-debs.sh          # on a small machine
# Packages: target/debian/io-gateway_<version>-1_<arch>.deb
set -euo pipefail
cd "$(dirname "$0")/.."

DEFAULT_TARGETS=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)
if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=("${DEFAULT_TARGETS[@]}")
fi
OUT=target/debian

command -v cargo-deb >/dev/null || {
    echo "error: cargo-deb not found: cargo install cargo-deb --locked" >&2
    exit 1
}

# Debian's architecture and readelf's "Machine:" for a Rust target.
debian_arch() {
    case "$1" in
        x86_64-*) echo amd64 ;;
        aarch64-*) echo arm64 ;;
        armv7-*gnueabihf) echo armhf ;;
        *) echo "error: no Debian architecture known for $1" >&2; return 1 ;;
    esac
}
elf_machine() {
    case "$1" in
        amd64) echo "Advanced Micro Devices X86-64" ;;
        arm64) echo "AArch64" ;;
        armhf) echo "ARM" ;;
    esac
}

failures=0
fail() {
    echo "  FAIL: $*" >&2
    failures=$((failures + 1))
}
pass() { echo "  ok: $*"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# check_deb DEB ARCH: the package's contents and scripts.
check_deb() {
    local deb=$1 arch=$2
    local contents="$work/$arch.contents"
    dpkg-deb -c "$deb" >"$contents"
    dpkg-deb -I "$deb" >"$work/$arch.info"

    [ "$(dpkg-deb -f "$deb" Package)" = io-gateway ] && pass "Package: io-gateway" || fail "package name"
    [ "$(dpkg-deb -f "$deb" Architecture)" = "$arch" ] && pass "Architecture: $arch" || fail "architecture"
    local depends
    depends=$(dpkg-deb -f "$deb" Depends)
    if grep -Eq '(^|, )libc6 \(>= [0-9.]+\)' <<<"$depends" && ! grep -q ':' <<<"$depends"; then
        pass "Depends: $depends"
    else
        fail "Depends should name libc6 (>= x.y), with no architecture qualifier: '$depends'"
    fi

    # path mode: expected entries of `dpkg-deb -c` (mode column, then ./path).
    while read -r mode path; do
        if awk -v m="$mode" -v p="$path" '$1 == m && $NF == p { found = 1 } END { exit !found }' "$contents"; then
            pass "$mode $path"
        else
            fail "$path with mode $mode not in the package: $(grep -F "$path" "$contents" || echo absent)"
        fi
    done <<'EXPECT'
-rwxr-xr-x ./usr/bin/io-gateway
-rw-r----- ./etc/io-gateway/gateway.toml
-rw-r----- ./etc/io-gateway/templates/tari.toml
-rw-r--r-- ./usr/lib/systemd/system/io-gateway.service
-rw-r--r-- ./usr/lib/sysusers.d/io-gateway.conf
-rw-r--r-- ./usr/share/io-gateway/grafana/io-gateway.json
-rw-r--r-- ./usr/share/io-gateway/prometheus/io-gateway.rules.yml
-rw-r--r-- ./usr/share/doc/io-gateway/README.md
EXPECT
    if awk '$1 ~ /^-/ && $NF ~ /^\.\/etc\// && substr($1, 8, 3) != "---" { bad = 1; print } END { exit bad }' "$contents" >"$work/$arch.world"; then
        pass "nothing under /etc is world-readable"
    else
        fail "world-readable under /etc: $(cat "$work/$arch.world")"
    fi

    local conffiles
    conffiles=$(dpkg-deb -I "$deb" conffiles 2>/dev/null || true)
    if grep -qx /etc/io-gateway/gateway.toml <<<"$conffiles"; then
        pass "conffiles: $(echo $conffiles)"
    else
        fail "/etc/io-gateway/gateway.toml is not a conffile: '$conffiles'"
    fi

    dpkg-deb -e "$deb" "$work/$arch.control"
    local postinst="$work/$arch.control/postinst"
    grep -q 'systemd-sysusers' "$postinst" && pass "postinst runs systemd-sysusers" || fail "postinst: no systemd-sysusers"
    grep -q 'deb-systemd-helper enable io-gateway.service' "$postinst" && pass "postinst enables io-gateway.service" ||
        fail "postinst: the unit is not enabled"
    if grep -Eq 'deb-systemd-invoke (start|\$_dh_action)' "$postinst"; then
        fail "postinst starts the service"
    else
        pass "postinst never starts the service (try-restart on upgrade only)"
    fi
    grep -q 'rm -rf /var/lib/io-gateway' "$work/$arch.control/postrm" && pass "postrm purges /var/lib/io-gateway" ||
        fail "postrm: no purge of the state directory"
    if grep -q '#DEBHELPER#' "$work/$arch.control"/*; then fail "#DEBHELPER# left unreplaced"; fi
    # cargo-deb replaces every occurrence of the token, comments included: once only.
    local blocks
    blocks=$(grep -c 'deb-systemd-helper enable io-gateway.service' "$postinst" || true)
    [ "$blocks" -eq 1 ] && pass "the generated systemd part is in postinst once" ||
        fail "the generated systemd part is in postinst $blocks times (a #DEBHELPER# in a comment?)"
    sh -n "$postinst" && sh -n "$work/$arch.control/postrm" && sh -n "$work/$arch.control/prerm" &&
        pass "maintainer scripts parse (sh -n)" || fail "a maintainer script does not parse"

    dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/io-gateway >"$work/$arch.bin"
    local machine
    machine=$(readelf -h "$work/$arch.bin" | sed -n 's/^ *Machine: *//p')
    [ "$machine" = "$(elf_machine "$arch")" ] && pass "binary for $machine" || fail "binary is for '$machine'"

    # Depends is written by hand (see gateway/Cargo.toml): the binary must link nothing
    # beyond libc6 and libgcc-s1, and need no newer glibc than Depends says.
    local lib needed
    needed=$(readelf -d "$work/$arch.bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
    for lib in $needed; do
        case "$lib" in
            libc.so.6 | libm.so.6 | libgcc_s.so.1 | ld-linux*) ;;
            *) fail "the binary links $lib: add its package to depends in gateway/Cargo.toml" ;;
        esac
    done
    pass "links only libc6 and libgcc-s1: ${needed% }"
    local floor declared
    floor=$(readelf -W -V "$work/$arch.bin" | grep -o 'Name: GLIBC_[0-9.]*' | sed 's/Name: GLIBC_//' | sort -uV | tail -n1)
    declared=$(sed -nE 's/.*libc6 \(>= ([0-9.]+)\).*/\1/p' <<<"$depends")
    if [ "$(printf '%s\n%s\n' "$floor" "$declared" | sort -V | tail -n1)" = "$declared" ]; then
        pass "needs GLIBC_$floor, Depends says libc6 (>= $declared)"
    else
        fail "the binary needs GLIBC_$floor but Depends says libc6 (>= $declared): raise it"
    fi
}

# check_packaged_config DEB: check-config on the packaged configuration (paths moved into a
# temp dir), with the packaged binary; only the town's files and keys may be missing.
check_packaged_config() {
    local deb=$1 root="$work/root"
    mkdir -p "$root/var/lib/io-gateway"
    dpkg-deb -x "$deb" "$root"
    sed -i -e "s|/etc/io-gateway|$root/etc/io-gateway|g" -e "s|/var/lib/io-gateway|$root/var/lib/io-gateway|g" \
        "$root/etc/io-gateway/gateway.toml"
    local status=0
    "$root/usr/bin/io-gateway" check-config --config "$root/etc/io-gateway/gateway.toml" \
        >"$work/check-config.out" 2>&1 || status=$?
    echo "  check-config on the packaged gateway.toml (exit $status):"
    sed "s|$root||g; s/^/    /" "$work/check-config.out"
    if [ "$status" -ne 78 ]; then
        fail "expected exit 78 (the town's keys are missing), got $status"
    elif grep -E '^ *- ' "$work/check-config.out" |
        grep -Ev -- '- (clients\[[0-9]+\]\.key_sha256|institutions\[[0-9]+\]\.services\[[0-9]+\]\.(primary|secondary)_key|io\.client_(certificate|key)):' \
            >"$work/unexpected"; then
        fail "problems other than the town's keys and certificate: $(cat "$work/unexpected")"
    else
        pass "only the town's keys, certificate and client keys are missing"
    fi
}

for target in "${targets[@]}"; do
    arch=$(debian_arch "$target")
    echo "== cargo deb --target $target ($arch)"
    cargo deb -p gateway --locked --target "$target" --output "$OUT/" >"$work/$arch.cargo-deb" ||
        { cat "$work/$arch.cargo-deb" >&2; exit 1; }
    deb=$(find "$OUT" -maxdepth 1 -name "io-gateway_*_$arch.deb" -newer "$work" | head -n1)
    if [ -z "$deb" ]; then
        deb=$(ls -t "$OUT"/io-gateway_*_"$arch".deb | head -n1)
    fi
    echo "-- $deb"
    check_deb "$deb" "$arch"
    if [ "$arch" = amd64 ] && [ "$(uname -m)" = x86_64 ]; then
        check_packaged_config "$deb"
    fi
done

echo
echo "== packages"
printf '%-44s %10s %14s\n' package "deb bytes" "installed KiB"
for target in "${targets[@]}"; do
    arch=$(debian_arch "$target")
    deb=$(ls -t "$OUT"/io-gateway_*_"$arch".deb | head -n1)
    printf '%-44s %10s %14s\n' "$(basename "$deb")" "$(stat -c %s "$deb")" "$(dpkg-deb -f "$deb" Installed-Size)"
done
if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "all package checks passed"

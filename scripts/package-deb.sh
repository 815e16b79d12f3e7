#!/usr/bin/env bash
# Builds farmgate's Debian package with cargo-deb ([package.metadata.deb] in
# Cargo.toml) and lists its contents with dpkg-deb.
#
#   scripts/package-deb.sh          release build -> target/debian/farmgate_VERSION-1_ARCH.deb
#   scripts/package-deb.sh --ci     packages the debug binary the tests already built
#                                   (checks the packaging in CI without a release build;
#                                   not a package to ship)
#
# Install the result with `apt install ./target/debian/farmgate_*.deb`.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
if [ "${1:-}" = "--ci" ]; then
  profile=dev
fi

if ! cargo deb --version >/dev/null 2>&1; then
  echo "scripts/package-deb.sh: installing cargo-deb (cargo install cargo-deb --locked)"
  cargo install cargo-deb --locked
fi

if [ "$profile" = release ]; then
  cargo build --release --locked
  bin=target/release/farmgate
else
  cargo build --locked
  bin=target/debug/farmgate
fi

# The man page and completions come from the binary itself.
mkdir -p target/assets
"$bin" man | gzip -9n > target/assets/farmgate.1.gz
"$bin" completions bash > target/assets/farmgate.bash
"$bin" completions zsh > target/assets/_farmgate
"$bin" completions fish > target/assets/farmgate.fish

out=target/debian
rm -f "$out"/farmgate_*.deb
if [ "$profile" = release ]; then
  cargo deb --no-build --locked --output "$out"
else
  # cargo-deb packages <target dir>/release/farmgate: give it a scratch
  # target dir holding the debug binary (cargo-deb refuses dev profiles).
  mkdir -p target/deb-ci/release
  cp "$bin" target/deb-ci/release/farmgate
  CARGO_TARGET_DIR=target/deb-ci cargo deb --no-build --locked --no-strip --fast --output "$out"
fi
deb=$(ls "$out"/farmgate_*.deb)
echo "== $deb"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
echo "== contents"
dpkg-deb --contents "$deb"

# What the package must carry; a missing file fails here, not on a server.
contents=$(dpkg-deb --contents "$deb")
for want in ./usr/bin/farmgate ./lib/systemd/system/farmgate.service \
  ./etc/farmgate/farmgate.yaml ./etc/logrotate.d/farmgate ./usr/share/man/man1/farmgate.1.gz \
  ./usr/share/bash-completion/completions/farmgate \
  ./usr/share/zsh/vendor-completions/_farmgate \
  ./usr/share/fish/vendor_completions.d/farmgate.fish \
  ./usr/share/farmgate/farmgate.schema.json; do
  if ! grep -q " $want\$" <<<"$contents"; then
    echo "scripts/package-deb.sh: $want is missing from $deb" >&2
    exit 1
  fi
done
if ! dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/farmgate/farmgate.yaml; then
  echo "scripts/package-deb.sh: /etc/farmgate/farmgate.yaml is not a conffile" >&2
  exit 1
fi
echo "scripts/package-deb.sh: $deb is complete"

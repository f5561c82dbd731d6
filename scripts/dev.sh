#!/usr/bin/env bash
# Gatehouse developer commands: setup, run, watch, test. Each installs what is
# missing (idempotently) and prints how long every phase took.
#
#   scripts/dev.sh run     build in release mode and serve on LEPTOS_SITE_ADDR
#   scripts/dev.sh watch   cargo leptos watch (rebuild and reload on change)
#   scripts/dev.sh test    Rust unit and integration tests, then Playwright in Chromium
#   scripts/dev.sh bench   release build, then every benchmark; writes BENCHMARKS.md
#                          (FIGURES="refresh login": only those, printed)
#   scripts/dev.sh setup   only install the toolchain
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CARGO_LEPTOS_VERSION=0.3.11
CARGO_LEPTOS_SHA256=2d8cab2c1d4397b3275fd234757d6467c3db7b2fde13377ef9d543a5e80b0be0
BINARYEN_NPM_VERSION=132
# The wasm-bindgen CLI must equal the library version in Cargo.lock.
WASM_BINDGEN_VERSION="$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/[^0-9.]/, ""); print; exit}' Cargo.lock)"

export PATH="$HOME/.cargo/bin:$ROOT/end2end/node_modules/.bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

PHASES=()
phase() {
  local name="$1"; shift
  local start=$SECONDS
  echo "==> $name"
  "$@"
  local took=$((SECONDS - start))
  PHASES+=("$(printf '%-28s %4dm%02ds' "$name" $((took / 60)) $((took % 60)))")
}
report() {
  echo "==> phase times"
  local line
  for line in "${PHASES[@]}"; do echo "    $line"; done
}
trap report EXIT

APT_UPDATED=0
apt_install() {
  if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
    echo "missing packages $*: install them as root" >&2
    return 1
  fi
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  if [ "$APT_UPDATED" = 0 ]; then
    $sudo apt-get update -q
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "$@"
}

# Two ways to build the WASM half: rustup's wasm32 target where it is installed,
# otherwise Debian's rustc-web with the standard library built from source.
wasm_mode() {
  if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    echo rustup
  else
    echo debian
  fi
}

MODE="$(wasm_mode)"
LIB_CARGO_ARGS=()
WASM_ENV=()
if [ "$MODE" = debian ]; then
  # Debian's compiler builds the WASM and nothing else. The build tools, the
  # tests and the server are built by rustup's, which is built with PGO and
  # compiles about twice as fast on these machines (cargo-leptos: 3m03s against
  # 8m15s). Proc-macros do not load across compilers, so a command that builds
  # both halves runs cargo-leptos twice, once per half.
  WASM_ENV=(PATH="$ROOT/end2end/node_modules/.bin:/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
            CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-22)
  # optimize_for_size: std's smaller sorting, formatting and float parsing.
  LIB_CARGO_ARGS=(--lib-cargo-args=-Zbuild-std=std,panic_abort --lib-cargo-args=-Zbuild-std-features=optimize_for_size)
fi
# Release WASM only, where std is built from source: a panic aborts without
# formatting a message, and panic locations and `Debug` output are left out.
# About 8% of the bundle; `watch` builds keep their panic messages.
RELEASE_WASM_RUSTFLAGS=()
if [ "$MODE" = debian ]; then
  RELEASE_WASM_RUSTFLAGS=(CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none -Zfmt-debug=none")
fi

# The build tools are built without their own release profile's LTO and single
# codegen unit: on two cores that one link took most of cargo-leptos's 25
# minutes, and neither tool does work where the last few percent matter.
tool_install() {
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
    CARGO_PROFILE_RELEASE_DEBUG=false cargo install "$@"
}

# cargo-leptos 0.3.11 is built from its crates.io source with two patches:
# - scripts/cargo-leptos-empty-chunks.patch: it panics while renaming hashed
#   files when wasm-split leaves an empty chunk (an 8-byte module, shorter than
#   the name it searches for: an unsigned subtraction that wraps);
# - scripts/cargo-leptos-without-new.patch: `cargo leptos new`, which nothing
#   here runs, is left out with cargo-generate, a quarter of its dependencies
#   (gix, a scripting engine, a DNS resolver), so a fresh machine builds it
#   sooner;
# - scripts/cargo-leptos-without-downloads.patch: the code that downloads and
#   unpacks tools (wasm-bindgen, wasm-opt, sass, tailwind) is gone with its
#   HTTP client, TLS stack (a CMake build of aws-lc) and archive readers, 42
#   crates: `no_downloads` already had it take them from PATH, and it now says
#   so clearly when one is missing. Fewer things to build that can fail; the
#   time it saves was lost in the noise (12m13s before, 13m42s after, on 2 cores);
# - scripts/cargo-leptos-external-minifiers.patch: release builds minify the
#   JS glue and the CSS with esbuild (npm, in end2end/node_modules like
#   wasm-opt) instead of swc and Lightning CSS, which with what only they
#   needed were 185 of its 416 crates (compiled in 8m15s instead of 12m13s
#   with Debian's rustc on 2 cores). `cargo leptos watch` minifies nothing
#   and needs neither.
# Its lock file is updated for one crate only (and rayon, which it needs
# newer): wasm-split 0.2.4, which attributes a relocation to the innermost
# symbol that holds it. With the 0.2.3 cargo-leptos locks, the password rule's
# dictionaries (1.1 MB of data) stayed in the module every page loads (566 KB
# brotli instead of 157 KB) rather than in their lazily loaded chunk.
# A mark beside it says which patches and versions the installed one has.
CARGO_LEPTOS_PATCHES=(
  "$ROOT/scripts/cargo-leptos-empty-chunks.patch"
  "$ROOT/scripts/cargo-leptos-without-new.patch"
  "$ROOT/scripts/cargo-leptos-without-downloads.patch"
  "$ROOT/scripts/cargo-leptos-external-minifiers.patch"
)
WASM_SPLIT_VERSION=0.2.4
cargo_leptos_mark() {
  local marked
  marked="$( (cat "${CARGO_LEPTOS_PATCHES[@]}"; echo "wasm_split_cli_support $WASM_SPLIT_VERSION") | sha256sum | cut -c1-16)"
  echo "$HOME/.cargo/cargo-leptos-$CARGO_LEPTOS_VERSION-$marked.patched"
}
install_cargo_leptos() {
  local work patch
  work="$(mktemp -d)"
  # Its source, from crates.io's download address, checked against the
  # registry's checksum. (Resolving a package that depends on it, as before,
  # downloaded all 712 crates it can use: 481 that the patches leave out.)
  curl -sSfL "https://static.crates.io/crates/cargo-leptos/cargo-leptos-$CARGO_LEPTOS_VERSION.crate" -o "$work/cargo-leptos.crate"
  echo "$CARGO_LEPTOS_SHA256  $work/cargo-leptos.crate" | sha256sum -c --quiet
  tar -xzf "$work/cargo-leptos.crate" -C "$work"
  mv "$work/cargo-leptos-$CARGO_LEPTOS_VERSION" "$work/cargo-leptos"
  for patch in "${CARGO_LEPTOS_PATCHES[@]}"; do
    (cd "$work/cargo-leptos" && git apply -p1 "$patch")
  done
  # Also drops what the removed dependency alone needed; every other version stays as locked.
  (cd "$work/cargo-leptos" && cargo update -p rayon -p rayon-core \
    && cargo update -p wasm_split_cli_support --precise "$WASM_SPLIT_VERSION")
  # no_downloads: take wasm-bindgen and wasm-opt from PATH instead of fetching them.
  tool_install --path "$work/cargo-leptos" --locked --features no_downloads --force \
    || tool_install --path "$work/cargo-leptos" --features no_downloads --force
  rm -rf "$work"
  rm -f "$HOME"/.cargo/cargo-leptos-*.patched
  touch "$(cargo_leptos_mark)"
}

setup_toolchain() {
  if [ "$MODE" = debian ]; then
    local missing=()
    [ -x /usr/bin/rustc ] && /usr/bin/rustc --print target-list 2>/dev/null | grep -qx wasm32-unknown-unknown || missing+=(rustc-web cargo-web)
    [ -d /usr/lib/rustlib/src/rust/library ] || missing+=(rust-web-src)
    command -v wasm-ld-22 >/dev/null || missing+=(lld-22)
    if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
  fi
  if ! wasm-bindgen --version 2>/dev/null | grep -q " $WASM_BINDGEN_VERSION\$"; then
    # Not --locked: one locked dependency of the CLI is missing from the registry.
    tool_install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
  fi
  if ! cargo-leptos --version 2>/dev/null | grep -q " $CARGO_LEPTOS_VERSION\$" || [ ! -f "$(cargo_leptos_mark)" ]; then
    install_cargo_leptos
  fi
  setup_node
}

setup_node() {
  if ! command -v npm >/dev/null; then apt_install nodejs npm; fi
  # binaryen from npm provides wasm-opt (Debian's binaryen 108 breaks the
  # module), esbuild the release build's minifier;
  # Playwright drives Debian's Chromium, so it must never download a browser.
  if [ ! -x end2end/node_modules/.bin/wasm-opt ] || [ ! -x end2end/node_modules/.bin/esbuild ] \
     || [ ! -d end2end/node_modules/@playwright/test ] \
     || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
    (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
  fi
}

setup_browser() {
  [ -x /usr/bin/chromium ] || apt_install chromium
}

# --split: each page, and the password strength rule with its dictionaries, go
# in WASM chunks of their own, fetched where they are used instead of on every page.
release_bundle() {
  env "${WASM_ENV[@]}" "${RELEASE_WASM_RUSTFLAGS[@]}" cargo leptos build --release --precompress --split --frontend-only "${LIB_CARGO_ARGS[@]}"
}

release_server() {
  cargo leptos build --release --server-only
}

start_database_services() {
  if command -v pg_ctlcluster >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
}

rust_tests() {
  cargo test --features ssr --no-fail-fast
}

browser_tests() {
  (cd end2end && npx playwright test)
}

setup_wrk() {
  command -v wrk >/dev/null || apt_install wrk
}

token_benchmarks() {
  cargo bench --profile benchmark --features ssr --bench tokens -- --warm-up-time 1 --measurement-time 4
}

# The adversarial suite's long run: ten minutes of mixed load, 20,000 fuzz cases.
soak_tests() {
  GATEHOUSE_SOAK_SECONDS="${GATEHOUSE_SOAK_SECONDS:-600}" GATEHOUSE_FUZZ_CASES="${GATEHOUSE_FUZZ_CASES:-20000}" \
    cargo test --features ssr --test integration adversarial -- --nocapture
}

load_benchmarks() {
  # A thousand sockets need more file descriptors than the usual 1024.
  ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true
  cargo bench --profile benchmark --features ssr --bench load -- "$@"
}

cmd="${1:-}"
case "$cmd" in
  setup)
    phase "toolchain ($MODE)" setup_toolchain
    ;;
  run)
    phase "toolchain ($MODE)" setup_toolchain
    phase "release bundle" release_bundle
    phase "release server" release_server
    trap - EXIT
    report
    echo "==> serving on http://${LEPTOS_SITE_ADDR:-127.0.0.1:3000} (Ctrl-C stops)"
    exec target/release/gatehouse serve
    ;;
  watch)
    phase "toolchain ($MODE)" setup_toolchain
    trap - EXIT
    report
    # One compiler for both halves: in Debian mode, Debian's.
    exec env "${WASM_ENV[@]}" cargo leptos watch --split "${LIB_CARGO_ARGS[@]}"
    ;;
  test)
    phase "toolchain ($MODE)" setup_toolchain
    phase "chromium" setup_browser
    phase "database services" start_database_services
    phase "rust tests" rust_tests
    # The browser tests get the release bundle, served by the server binary
    # the Rust tests built (end2end/playwright.config.ts): a release server
    # would be a third build of every dependency, for the same code.
    phase "release bundle" release_bundle
    phase "playwright (chromium)" browser_tests
    ;;
  bench)
    phase "toolchain ($MODE)" setup_toolchain
    phase "wrk" setup_wrk
    phase "database services" start_database_services
    if [ -n "${FIGURES:-}" ]; then
      # Only the figures named, printed; BENCHMARKS.md is left as it is. The
      # pages and the bundle are the release build's.
      case " $FIGURES " in
        *" page "* | *" bundle "*) phase "release bundle" release_bundle; phase "release server" release_server ;;
      esac
      # shellcheck disable=SC2086
      phase "load benchmarks ($FIGURES)" load_benchmarks $FIGURES
    else
      phase "release bundle" release_bundle
      phase "release server" release_server
      phase "token benchmarks" token_benchmarks
      phase "load benchmarks" load_benchmarks
    fi
    ;;
  soak)
    phase "toolchain ($MODE)" setup_toolchain
    phase "database services" start_database_services
    phase "adversarial suite, long run" soak_tests
    ;;
  *)
    echo "usage: scripts/dev.sh {run|watch|test|bench|soak|setup}" >&2
    exit 2
    ;;
esac

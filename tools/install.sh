#!/usr/bin/env bash
# Installs the pinned third-party test clients (tools/versions.env) into a
# cache outside the work tree and links them into ./bin. Repeat runs are fast:
# a tool already in the cache is not rebuilt.
#
#   tools/install.sh            # everything
#   tools/install.sh cosign age # only these
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=versions.env
. "$here/tools/versions.env"
cache="${STELLA_TOOLS_CACHE:-$HOME/.cache/stella-tools}"
mkdir -p "$cache" "$here/bin"

log() { printf 'tools: %s\n' "$*" >&2; }

goinstall() { # name version pkg [env...]
  local name=$1 ver=$2 pkg=$3; shift 3
  local dir="$cache/$name-$ver"
  if [ ! -x "$dir/$name" ]; then
    log "building $name $ver (cached in $dir)"
    mkdir -p "$dir.tmp"
    env GOBIN="$dir.tmp" GOFLAGS=-buildvcs=false "$@" go install "$pkg@$ver"
    rm -rf "$dir"; mv "$dir.tmp" "$dir"
  fi
  ln -sfn "$dir/$name" "$here/bin/$name"
}

apt_ok=0
aptinstall() { # debian packages...
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ $apt_ok -eq 0 ]; then apt-get update -qq >/dev/null; apt_ok=1; fi
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

want() { [ $# -eq 0 ] && return 0; return 1; }
sel=("$@")
pick() { [ ${#sel[@]} -eq 0 ] && return 0; local x; for x in "${sel[@]}"; do [ "$x" = "$1" ] && return 0; done; return 1; }

if pick debian || pick age || pick docker-registry; then
  # shellcheck disable=SC2086
  aptinstall $DEBIAN_PACKAGES
  ln -sfn "$(command -v age)" "$here/bin/age"
  ln -sfn "$(command -v age-keygen)" "$here/bin/age-keygen"
  [ -x /usr/bin/docker-registry ] && ln -sfn /usr/bin/docker-registry "$here/bin/docker-registry"
fi
pick cosign && goinstall cosign "$COSIGN_VERSION" github.com/sigstore/cosign/v2/cmd/cosign
pick trivy && goinstall trivy "$TRIVY_VERSION" github.com/aquasecurity/trivy/cmd/trivy \
  CGO_ENABLED=0 GOEXPERIMENT=jsonv2
# trivy-db (the upstream DB builder) is for `make bench` only: installed when
# asked for by name, never by a bare tools/install.sh.
if [ ${#sel[@]} -gt 0 ] && pick trivy-db; then
  goinstall trivy-db "$TRIVY_DB_VERSION" github.com/aquasecurity/trivy-db/cmd/trivy-db
fi
pick staticcheck && goinstall staticcheck "$STATICCHECK_VERSION" honnef.co/go/tools/cmd/staticcheck
pick goreleaser && goinstall goreleaser "$GORELEASER_VERSION" github.com/goreleaser/goreleaser/v2
log "ready in $here/bin"

#!/usr/bin/env bash
# make demo: submit a json:raw run over testdata/sample with the embedded
# engine on a throwaway ledger, watch it, verify the bundle, print where it is.
set -euo pipefail
bin=${1:-bin/stella}
dir=${2:-.demo}
rm -rf "$dir"; mkdir -p "$dir"
export STELLA_CONFIG= XDG_CONFIG_HOME="$dir/config"
st() { "$bin" export --data-dir "$dir/data" "$@"; }

echo "== plan: what a json:raw run over testdata/sample would include"
st plan --profile json:raw --source sample=testdata/sample --format table
echo
echo "== run submit --watch"
st run submit --profile json:raw --source sample=testdata/sample --watch
run=$(st run list --format json | sed -n 's/.*"runId": "\([^"]*\)".*/\1/p' | head -1)
bundle=$(st run show "$run" --format json | sed -n 's/.*"path": "\([^"]*\.tar\.zst\)".*/\1/p' | head -1)
echo
echo "== verify $bundle"
st verify "$bundle" --format table
echo
echo "run:    $run"
echo "bundle: $bundle"

# trivy:db (sourced by scripts/bench.sh inside its per-size loop; uses
# $bin $work $n $corpus and best/row from there):
#   1. stella trivy:db over the benchmark corpus (records/s, DB and bundle
#      size, peak RSS);
#   2. the same against the upstream builder, `trivy-db build` (built from
#      the Go module proxy, tools/versions.env), over one corpus both can
#      read: real GitHub-advisory-shaped records replicated under new ids
#      (tools/gencorpus -ghsa), laid out as trivy-db's vuln-list cache;
#   3. the builder alone against a plain bbolt loop writing the same
#      key/values (go test -bench TrivyDB / TrivyDBFloor).
trivy_db_size() { # bundle -> size of trivy.db inside trivy/db.bundle
  local b=$1 tmp; tmp=$(mktemp -d)
  zstd -dc "$b" | tar -x -C "$tmp" --wildcards '*/db.bundle'
  tar -xzf "$(find "$tmp" -name db.bundle)" -C "$tmp" trivy.db
  stat -c %s "$tmp/trivy.db"; rm -rf "$tmp"
}

trivy_data="$work/trivy-$n"
read -r s rss < <(best 'rm -rf "$trivy_data"' env SOURCE_DATE_EPOCH=0 "$bin" export --data-dir "$trivy_data" run submit --profile trivy:db --source bench="$corpus")
row "stella trivy:db ($n)" "$n" "$s" "$bytes" "$rss"
trivy_bundle=$(ls "$trivy_data"/runs/*/trivy-*.tar.zst)
printf '  trivy.db %.1f MB, bundle %.1f MB\n' "$(awk -v b="$(trivy_db_size "$trivy_bundle")" 'BEGIN{print b/1e6}')" "$(awk -v b="$(stat -c %s "$trivy_bundle")" 'BEGIN{print b/1e6}')"

# 2. Against the upstream builder, on a corpus both read.
ghsa_corpus="$work/corpus-ghsa-$n"
if [ ! -f "$ghsa_corpus/.done" ]; then
  rm -rf "$ghsa_corpus"
  go run ./tools/gencorpus -ghsa -n "$n" -out "$ghsa_corpus" >/dev/null
  touch "$ghsa_corpus/.done"
fi
ghsa_bytes=$(du -sb --exclude=.done "$ghsa_corpus" | cut -f1)
tar -cf - -C "$ghsa_corpus" . | cat >/dev/null
read -r s rss < <(best 'rm -rf "$trivy_data"' env SOURCE_DATE_EPOCH=0 "$bin" export --data-dir "$trivy_data" run submit --profile trivy:db --source ghsa="$ghsa_corpus")
row "stella trivy:db, GHSA corpus ($n)" "$n" "$s" "$ghsa_bytes" "$rss"
ours=$s
trivy_bundle=$(ls "$trivy_data"/runs/*/trivy-*.tar.zst)
ours_db=$(trivy_db_size "$trivy_bundle")
if tools/install.sh trivy-db >/dev/null 2>&1 && [ -x bin/trivy-db ]; then
  # trivy-db reads <cache>/ghsa/advisories/github-reviewed/**.json and a
  # CocoaPods specs folder; hard links make the layout without copying.
  tdb_cache="$work/trivy-db-cache-$n"
  if [ ! -f "$tdb_cache/.done" ]; then
    rm -rf "$tdb_cache"; mkdir -p "$tdb_cache/ghsa/advisories" "$tdb_cache/cocoapods-specs/Specs"
    cp -al "$ghsa_corpus" "$tdb_cache/ghsa/advisories/github-reviewed"
    rm -f "$tdb_cache/ghsa/advisories/github-reviewed/.done"
    touch "$tdb_cache/.done"
  fi
  tdb_out="$work/trivy-db-out-$n"
  # One run (it takes minutes at 200,000 and is several times slower than
  # ours, so the fastest-of-N rule would not change the comparison).
  read -r s rss < <(BENCH_REPEAT=1 best 'rm -rf "$tdb_out"' bin/trivy-db build --only-update ghsa --cache-dir "$tdb_cache" --output-dir "$tdb_out")
  row "trivy-db build, GHSA corpus, 1 run ($n)" "$n" "$s" "$ghsa_bytes" "$rss"
  awk -v a="$ours" -v b="$s" -v od="$ours_db" -v td="$(stat -c %s "$tdb_out/trivy.db")" 'BEGIN{
    printf "  stella trivy:db / trivy-db build time: %.2fx   trivy.db %.1f MB vs %.1f MB\n", a/b, od/1e6, td/1e6 }'
  rm -rf "$tdb_out"
else
  echo "  trivy-db build: not installed (tools/install.sh trivy-db); comparison skipped"
fi

# 3. The builder alone against a plain bbolt loop writing the same key/values.
trivy_bench() {
  STELLA_TRIVY_BENCH_N=$n go test -run '^$' -bench "$1" -benchtime 1x ./internal/adapter/trivy/ |
    awk '/^Benchmark/{ for (i = 3; i < NF; i += 2) if ($(i+1) == "ns/op") printf "%.2f\n", $i / 1e9 }'
}
builder=$(trivy_bench 'TrivyDB$'); floor=$(trivy_bench 'TrivyDBFloor$')
awk -v a="$builder" -v b="$floor" -v n="$n" 'BEGIN{
  printf "  trivy builder alone %.2f s vs plain bbolt loop of its key/values %.2f s: %.2fx\n", a, b, (b>0?a/b:0) }'

# Mirror bundles (sourced by scripts/bench.sh inside its per-size loop; uses
# $bin $work $n $corpus $bytes $base and best/measure/row from there):
#   full mirror build vs tar | zstd -T0 -3, delta build for a 1% change,
#   apply of the full bundle and of the delta, mirror verify vs
#   zstd -d | sha256sum over the same archive, delta size / full size.
mirror_changed="$work/corpus-$n-changed"
if [ ! -f "$mirror_changed/.done" ]; then
  rm -rf "$mirror_changed"
  go run ./tools/gencorpus -n "$n" -changed 100 -out "$mirror_changed" >/dev/null
  touch "$mirror_changed/.done"
fi
tar -cf - -C "$mirror_changed" . | cat >/dev/null   # (through cat: GNU tar skips reading files for /dev/null)
# The chain's source folder is updated in place between the full build and
# the delta, as a feed sync does: a working copy of the corpus (hard links,
# so no data is copied) whose changed records are rewritten (new files
# renamed over the old) after the full build.
mirror_work="$work/mirror-work-$n"
rm -rf "$mirror_work"; cp -al "$corpus" "$mirror_work"; rm -f "$mirror_work/.done"
sleep 2.5 # files changed within 2 s of a run's start are always re-read (racily clean)
mirror_data="$work/mirror-$n"
mirror_target="$work/mirror-target-$n"
rm -rf "$mirror_data" "$mirror_target"
# Bundles expire 30 days after generatedAt; date them now so apply accepts them.
mirror_sde=$(date +%s)

# The full build and tar | zstd are measured in turns (one of each, again
# and again; the fastest of each): the machine is shared, and its speed
# drifts over minutes, so runs of one taken long after runs of the other
# would compare two machines. The order flips every round: a job run right
# after the full build is slower by a few percent (seen on tar | zstd).
s="" rss=0 tz=""
mirror_full_once() {
  rm -rf "$mirror_data"; sync
  read -r a r < <(measure env SOURCE_DATE_EPOCH="$mirror_sde" "$bin" export --data-dir "$mirror_data" run submit --profile mirror:full --source bench="$mirror_work")
  if [ -z "$s" ] || awk -v a="$a" -v b="$s" 'BEGIN{exit !(a<b)}'; then s=$a; fi
  if [ "$r" -gt "$rss" ]; then rss=$r; fi
}
tar_zstd_once() {
  sync
  read -r a r < <(measure sh -c "tar -cf - -C '$corpus' . | zstd -T0 -3 -q -o '$work/baseline.tar.zst' -f")
  if [ -z "$tz" ] || awk -v a="$a" -v b="$tz" 'BEGIN{exit !(a<b)}'; then tz=$a; fi
}
for ((i = 0; i < ${BENCH_REPEAT:-3}; i++)); do
  if ((i % 2 == 0)); then mirror_full_once; tar_zstd_once; else tar_zstd_once; mirror_full_once; fi
done
row "stella mirror:full ($n)" "$n" "$s" "$bytes" "$rss"
row "tar | zstd -T0 -3, in turns ($n)" "$n" "$tz" "$bytes" 0
mirror_full_s=$s
mirror_full=$(ls "$mirror_data"/runs/*/mirror-*-full-*.tar.zst)
awk -v a="$s" -v b="$tz" -v b0="$base" -v bs="$(stat -c %s "$mirror_full")" -v zs="$(stat -c %s "$work/baseline.tar.zst")" 'BEGIN{
  printf "  mirror:full / tar|zstd time: %.2fx in turns (%.2fx against the first tar|zstd row)   bundle %.1f MB vs tar|zstd %.1f MB\n", a/b, a/b0, bs/1e6, zs/1e6 }'

go run ./tools/gencorpus -n "$n" -changed 100 -only-changed -out "$mirror_work" >/dev/null
# Every delta run starts from the ledger as the full build left it (so its
# base is the full bundle, not the previous delta).
rm -rf "$mirror_data.base"; cp -a "$mirror_data" "$mirror_data.base"
read -r s rss < <(best 'rm -rf "$mirror_data"; cp -a "$mirror_data.base" "$mirror_data"' env SOURCE_DATE_EPOCH="$mirror_sde" "$bin" export --data-dir "$mirror_data" run submit --profile mirror:delta --source bench="$mirror_work")
row "stella mirror:delta 1% ($n)" "$n" "$s" "$bytes" "$rss"
mirror_delta=$(ls "$mirror_data"/runs/*/mirror-*-delta-*.tar.zst)
awk -v f="$mirror_full_s" -v d="$s" -v fs="$(stat -c %s "$mirror_full")" -v ds="$(stat -c %s "$mirror_delta")" 'BEGIN{
  printf "  delta build %.1fx faster than full;  delta size / full size: %.2f%% (%.2f MB / %.2f MB)\n", (d>0?f/d:0), 100*ds/fs, ds/1e6, fs/1e6 }'

read -r s rss < <(best 'rm -rf "$mirror_target"' "$bin" export mirror apply "$mirror_full" --target "$mirror_target")
row "stella mirror apply full ($n)" "$n" "$s" "$(stat -c %s "$mirror_full")" "$rss"
rm -rf "$mirror_target.full"; cp -a "$mirror_target" "$mirror_target.full"
read -r s rss < <(best 'rm -rf "$mirror_target"; cp -a "$mirror_target.full" "$mirror_target"' "$bin" export mirror apply "$mirror_delta" --target "$mirror_target")
row "stella mirror apply delta ($n)" "$((n / 100))" "$s" "$(stat -c %s "$mirror_delta")" "$rss"

read -r s rss < <(best : "$bin" export mirror verify "$mirror_full")
row "stella mirror verify full ($n)" "$n" "$s" "$(stat -c %s "$mirror_full")" "$rss"
mirror_verify_s=$s
read -r s rss < <(best : sh -c "zstd -d -c '$mirror_full' | sha256sum")
row "zstd -d | sha256sum, full ($n)" "$n" "$s" "$(stat -c %s "$mirror_full")" "$rss"
awk -v a="$mirror_verify_s" -v b="$s" 'BEGIN{ printf "  mirror verify / (zstd -d | sha256sum): %.2fx\n", (b>0?a/b:0) }'

read -r s rss < <(best : env SOURCE_DATE_EPOCH="$mirror_sde" "$bin" export --data-dir "$mirror_data" run submit --profile json:raw --source mirror="$mirror_target")
row "stella json:raw from target ($n)" "$n" "$s" "$bytes" "$rss"
rm -rf "$mirror_target" "$mirror_target.full" "$mirror_data.base" "$mirror_work"

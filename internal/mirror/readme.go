package mirror

// Readme is README.md of every mirror bundle: static text for the person
// who receives the bundle (nothing in it depends on the run).
const Readme = `# stella mirror bundle

This archive is a mirror of security evidence (advisories, VEX statements,
SBOMs and, when present, a policy overlay) made by ` + "`stella export`" + `.
It is meant to be carried to a site without network access and applied
there. Everything below works offline.

## What is inside

- ` + "`export.json`" + ` — the manifest: every file with its sha256, the
  bundle's ` + "`sequence`" + ` in its chain, ` + "`expires`" + `, and for a delta
  ` + "`delta.baseManifestDigest`" + ` (the sha256 of the export.json of the
  bundle it applies on) with the added, changed and removed records.
- ` + "`manifest.yaml`" + ` — a human summary of export.json.
- ` + "`provenance.json`" + ` — in-toto / SLSA provenance; ` + "`signatures/`" + ` —
  cosign-compatible signatures of export.json and manifest.yaml.
- ` + "`indexes/*.index.json`" + ` — record id -> file, digest, source, path;
  ` + "`indexes/tombstones.jsonl`" + ` (deltas) — one line per removed or
  newly withdrawn record.
- ` + "`data/`" + ` — the records: raw documents byte for byte
  (` + "`data/raw`" + `), normalised records (` + "`data/normalized`" + `), the policy
  overlay (` + "`data/policy`" + `). When export.json has an ` + "`encryption`" + `
  field, every file under data/ is encrypted (indexes and signatures are not).

## Verify

    stella export mirror verify <bundle.tar.zst> [--key cosign.pub] [--identity key.txt]

checks every file against export.json, the signatures (with --key), the
delta chain fields, the tombstones and the expiry; it exits 3 on any
failure. Without stella:

    cosign verify-blob --key cosign.pub --signature signatures/export.sig \
        --insecure-ignore-tlog export.json
    sha256sum <each file listed in export.json contents[]>

## Apply

Apply the full bundle first, then every delta in sequence order (one
command may take them all, in any order):

    stella export mirror apply mirror-<tenant>-<date>-full-<n>.tar.zst \
        mirror-<tenant>-<date>-delta-<n+1>.tar.zst ... --target /srv/mirror
    stella export mirror status --target /srv/mirror

Apply is atomic (the target changes only when everything checked out) and
idempotent; it refuses a bundle that is expired, damaged, out of order,
on the wrong base, or older than what the target holds (unless
--allow-rollback). Encrypted bundles need --identity <age identity file>.
An age-mode data file also decrypts with the stock age tool:

    age -d -i key.txt data/raw/advisories/<source>.jsonl.zst > plain.jsonl.zst

The applied target is an evidence source for further exports:

    stella export run submit --profile json:raw --source mirror=/srv/mirror
`

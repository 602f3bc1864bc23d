#!/usr/bin/env bash
# Reproduces plugins/leadnorm/quality/datadocs_assets/ from the npm registry.
#
# Great Expectations' Data Docs pages load their scripts, styles and fonts from CDNs.
# leadnorm.quality.datadocs copies these vendored copies next to the docs and points the pages at
# them, so the docs render with no network at all. Each line of ASSETS names the URL a GX
# page uses (as written in GX 1.24's templates), the npm package with the same file (the
# exact version GX names; for GX's floating `vega@5`, `vega-lite@5`, `vega-embed@6` the
# newest release of that major), the file(s) in that package (several are concatenated)
# and where it goes. Minified builds only; source maps and unused font formats dropped.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/plugins/leadnorm/quality/datadocs_assets"

#       url used by GX pages | npm package | file(s) in the package | vendored as
ASSETS=(
  "https://code.jquery.com/jquery-3.7.1.min.js|jquery@3.7.1|dist/jquery.min.js|jquery-3.7.1/jquery.min.js"
  "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js|popper.js@1.12.9|dist/umd/popper.min.js|popper.js-1.12.9/popper.min.js"
  "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css|bootstrap@4.3.1|dist/css/bootstrap.min.css|bootstrap-4.3.1/bootstrap.min.css"
  "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js|bootstrap@4.3.1|dist/js/bootstrap.min.js|bootstrap-4.3.1/bootstrap.min.js"
  "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css|bootstrap-table@1.19.1|dist/bootstrap-table.min.css|bootstrap-table-1.19.1/bootstrap-table.min.css"
  "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js|bootstrap-table@1.19.1|dist/bootstrap-table.min.js|bootstrap-table-1.19.1/bootstrap-table.min.js"
  "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js|bootstrap-table@1.19.1|dist/extensions/filter-control/bootstrap-table-filter-control.min.js|bootstrap-table-1.19.1/bootstrap-table-filter-control.min.js"
  "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css|bootstrap-table@1.19.0|dist/extensions/filter-control/bootstrap-table-filter-control.min.css|bootstrap-table-1.19.0/bootstrap-table-filter-control.min.css"
  "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css|bootstrap-table@1.19.0|dist/extensions/filter-control/bootstrap-table-filter-control.min.css|bootstrap-table-1.19.0/bootstrap-table-filter-control.min.css"
  "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css|bootstrap-datepicker@1.9.0|dist/css/bootstrap-datepicker.min.css|bootstrap-datepicker-1.9.0/bootstrap-datepicker.min.css"
  "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js|bootstrap-datepicker@1.9.0|dist/js/bootstrap-datepicker.min.js|bootstrap-datepicker-1.9.0/bootstrap-datepicker.min.js"
  "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css|@forevolve/bootstrap-dark@1.1.0|dist/css/bootstrap-prefers-dark.min.css|bootstrap-dark-1.1.0/bootstrap-prefers-dark.min.css"
  # GX pages use only solid icons (`fas`): the core CSS plus the solid face, woff2 only.
  "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css|@fortawesome/fontawesome-free@6.6.0|css/fontawesome.min.css css/solid.min.css|fontawesome-free-6.6.0/css/fontawesome-solid.min.css"
  "-|@fortawesome/fontawesome-free@6.6.0|webfonts/fa-solid-900.woff2|fontawesome-free-6.6.0/webfonts/fa-solid-900.woff2"
  "https://cdn.jsdelivr.net/npm/vega@5|vega@5.33.1|build/vega.min.js|vega-5.33.1/vega.min.js"
  "https://cdn.jsdelivr.net/npm/vega-lite@5|vega-lite@5.23.0|build/vega-lite.min.js|vega-lite-5.23.0/vega-lite.min.js"
  "https://cdn.jsdelivr.net/npm/vega-embed@6|vega-embed@6.29.0|build/vega-embed.min.js|vega-embed-6.29.0/vega-embed.min.js"
)

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# One `npm pack` per package: downloads the published tarball, runs no install scripts.
declare -A UNPACKED=()
unpacked() {
  local spec="$1"
  if [[ -z "${UNPACKED[$spec]:-}" ]]; then
    local dir="$WORK/$(echo "$spec" | tr '/@' '__')"
    mkdir -p "$dir"
    local tarball
    tarball="$(cd "$WORK" && npm pack --silent "$spec" | tail -n 1)"
    tar -xzf "$WORK/$tarball" -C "$dir"
    UNPACKED[$spec]="$dir/package"
  fi
  echo "${UNPACKED[$spec]}"
}

rm -rf "$DEST"
mkdir -p "$DEST"
MANIFEST_ENTRIES=()
for line in "${ASSETS[@]}"; do
  IFS='|' read -r url spec files target <<<"$line"
  package="$(unpacked "$spec")"
  mkdir -p "$(dirname "$DEST/$target")"
  # shellcheck disable=SC2086 # $files is a list
  (cd "$package" && cat $files) >"$DEST/$target"
  case "$target" in
    *.css | *.js)
      # No source maps (never shipped) and no TrueType fallbacks (woff2 is enough).
      sed -i -E -e '/^\/[/*]# sourceMappingURL=.*$/d' \
                -e 's#,url\([^)]*\.ttf\) format\("truetype"\)##g' "$DEST/$target" ;;
  esac
  [[ "$url" == "-" ]] || MANIFEST_ENTRIES+=("  \"$url\": \"$target\"")
done

{
  echo "{"
  for i in "${!MANIFEST_ENTRIES[@]}"; do
    sep=","; [[ $i -eq $((${#MANIFEST_ENTRIES[@]} - 1)) ]] && sep=""
    echo "${MANIFEST_ENTRIES[$i]}$sep"
  done
  echo "}"
} >"$DEST/manifest.json"

# The point of the exercise: nothing vendored may reach out to the network itself.
if grep -rEn 'url\(\s*["'"'"']?\s*(https?:)?//|@import' "$DEST" --include='*.css'; then
  echo "vendored CSS still references remote files" >&2
  exit 1
fi
du -sh "$DEST"

#!/usr/bin/env bash
# Validates every ```mermaid block in docs/**/*.md (and README.md, ARCHITECTURE.md) offline
# with Mermaid's own parser: mermaid.parse() under jsdom, no browser. On top of the syntax it
# checks what the parser accepts but draws wrong: C4 relations and UpdateRelStyle naming
# unknown aliases, sequence-diagram messages to undeclared participants, shapeless flowchart
# nodes (typos of an id), undeclared classes in class diagrams
# (scripts/diagrams/check_diagrams.mjs). It does not render, so layout is not checked.
#
#   scripts/check_diagrams.sh                     # every Markdown file under docs/, README.md, ARCHITECTURE.md
#   scripts/check_diagrams.sh docs/architecture/context.md   # only these files
#
# Needs node (18 or newer) and npm. The packages are pinned with their integrity hashes in
# scripts/diagrams/package.json and package-lock.json, and installed with `npm ci` into
# DIAGRAMS_TOOLS (default target/diagrams-node), again only when those two files change.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "check_diagrams: $*"; }
die() { echo "check_diagrams: $*" >&2; exit 1; }

command -v node >/dev/null || die "node is not on PATH (Debian: nodejs)"
command -v npm >/dev/null || die "npm is not on PATH (Debian: npm)"
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 18 ] || die "node $(node --version) is too old; mermaid 11 needs 18 or newer"

tools=${DIAGRAMS_TOOLS:-target/diagrams-node}
pins=(scripts/diagrams/package.json scripts/diagrams/package-lock.json)
wanted=$(cat "${pins[@]}" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$tools/.pins" 2>/dev/null)" != "$wanted" ]; then
    say "installing the pinned packages into $tools"
    rm -rf "$tools"
    mkdir -p "$tools"
    cp "${pins[@]}" "$tools/"
    (cd "$tools" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$wanted" >"$tools/.pins"
fi

if [ $# -gt 0 ]; then
    files=("$@")
else
    mapfile -t files < <( { find docs -name '*.md'; ls README.md ARCHITECTURE.md; } | sort)
fi
[ ${#files[@]} -gt 0 ] || die "no Markdown files to check"
DIAGRAM_TOOLS=$tools node scripts/diagrams/check_diagrams.mjs "${files[@]}"

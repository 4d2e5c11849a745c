#!/usr/bin/env bash
# Fetch the browser-side files the book needs, from the npm registry (tarballs only, no install
# scripts), into _vendor/site, which the build copies to the root of the HTML.
# VENDOR_DIR=/some/folder puts them elsewhere (the set-up benchmark measures a fresh fetch that way).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="${VENDOR_DIR:-_vendor}"
MATHJAX=3.2.2
HTML_MANAGER=1.0.15
REQUIREJS=2.3.8
rm -rf "$DEST" && mkdir -p "$DEST/tmp" "$DEST/site"
cd "$DEST/tmp"
npm pack --silent "mathjax@$MATHJAX" "@jupyter-widgets/html-manager@$HTML_MANAGER" "requirejs@$REQUIREJS" >/dev/null 2>&1
for f in mathjax-*.tgz jupyter-widgets-html-manager-*.tgz requirejs-*.tgz; do
  d="${f%%-[0-9]*}"; mkdir -p "$d"; tar -xzf "$f" -C "$d" --strip-components=1
done
cp -r mathjax/es5 ../site/mathjax
mkdir -p ../site/html-manager && cp jupyter-widgets-html-manager/dist/embed-amd.js ../site/html-manager/
# The widgets' icon fonts (Font Awesome), next to the module that loads them (see nb_ipywidgets_js in _config.yml).
cp jupyter-widgets-html-manager/dist/*.woff2 jupyter-widgets-html-manager/dist/*.woff ../site/html-manager/
cp requirejs/require.js ../site/require.js
cd .. && rm -rf tmp && touch .complete
echo "vendored mathjax@$MATHJAX, @jupyter-widgets/html-manager@$HTML_MANAGER, requirejs@$REQUIREJS into $DEST/site"

#!/usr/bin/env bash
# readme_paths.sh REPO: every deployment file the README names (k8s/..., Dockerfile.*, scripts/...)
# exists, so the walk-through never sends a reader to a folder that was moved. A component in
# capitals (k8s/overlays/CLOUD/persistent) stands for any folder.
set -uo pipefail
repo=$1
failures=0 n=0
while IFS= read -r p; do
  p=${p%[.,:;)]}
  n=$((n + 1))
  # An all-capitals component is a placeholder (k8s/overlays/CLOUD): some folder must fit it.
  glob=$(sed -E 's#(^|/)[A-Z]+(/|$)#\1*\2#g' <<<"$p")
  if compgen -G "$repo/$glob" >/dev/null; then echo "ok   $p"; else echo "FAIL README names $p, which does not exist"; failures=$((failures + 1)); fi
done < <(grep -oE '(k8s/[A-Za-z0-9_./-]*|Dockerfile\.[a-z]+|scripts/[a-z-]+\.sh)' "$repo/README.md" | sort -u)
((n > 0)) || { echo "FAIL the README names no deployment file"; exit 1; }
echo "$((n - failures))/$n paths named in README.md exist"
exit $((failures > 0))

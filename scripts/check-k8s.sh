#!/usr/bin/env bash
# Validates the Kubernetes manifests in deploy/k8s against the Kubernetes
# API schemas with kubernetes-validate (PyPI), strictly (unknown fields are
# errors): every resource the kustomization lists, and, when kubectl is
# installed, the whole kustomization as `kubectl kustomize` renders it
# (generated ConfigMaps, replacements and image overrides included).
#
#   pip install kubernetes-validate && scripts/check-k8s.sh
set -euo pipefail
cd "$(dirname "$0")/../deploy/k8s"
if ! python3 -c 'import kubernetes_validate' 2> /dev/null; then
  echo "kubernetes-validate is not installed: pip install kubernetes-validate" >&2
  exit 2
fi
validate() { python3 -m kubernetes_validate --strict --quiet "$@"; }

# The files the kustomization names must exist; resources must validate.
mapfile -t listed < <(python3 - <<'PY'
import yaml
k = yaml.safe_load(open("kustomization.yaml"))
assert k.get("kind") == "Kustomization", "kustomization.yaml is not a Kustomization"
for r in k.get("resources", []):
    print("resource " + r)
for g in k.get("configMapGenerator", []):
    for f in g.get("files", []):
        print("file " + f.split("=")[-1])
PY
)
resources=()
for entry in "${listed[@]}"; do
  kind=${entry%% *} path=${entry#* }
  [ -f "$path" ] || { echo "deploy/k8s/kustomization.yaml names $path, which does not exist" >&2; exit 1; }
  [ "$kind" = resource ] && resources+=("$path")
done
if [ ${#resources[@]} -eq 0 ]; then
  echo "deploy/k8s/kustomization.yaml lists no resources (or could not be read)" >&2
  exit 1
fi
validate "${resources[@]}"
echo "deploy/k8s: ${#resources[@]} resource files valid"

if command -v kubectl > /dev/null; then
  rendered=$(mktemp)
  trap 'rm -f "$rendered"' EXIT
  kubectl kustomize . > "$rendered"
  validate "$rendered"
  echo "deploy/k8s: the rendered kustomization is valid"
else
  echo "deploy/k8s: kubectl not installed, the rendered kustomization was not checked"
fi

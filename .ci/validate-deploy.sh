#!/usr/bin/env bash
# Checks deploy/ offline, without a cluster or a container engine:
# - every Kubernetes manifest in deploy/kubernetes against the API schemas
#   of the Kubernetes versions below, in strict mode (an unknown or
#   misspelt field fails), with PyPI's kubernetes-validate (schemas
#   bundled, no network once installed);
# - kustomization.yaml lists files that exist, and the Deployment and the
#   DaemonSet run the same container;
# - the settings that must agree across files (grace periods against
#   shutdown_delay_ms + drain_timeout_ms, CPUs against shards, ports, the
#   compile cache under its volume, the sample guest's path);
# - the systemd unit with `systemd-analyze verify`, if it exists here.
# Exits non-zero on the first file that fails.
# Usage: bash .ci/validate-deploy.sh   (KUBE_VERSIONS="1.30.0 1.37.0" to pick)
set -euo pipefail
cd "$(dirname "$0")/.."

# The oldest Kubernetes release the manifests are meant for, and the newest
# one whose schemas kubernetes-validate 1.37.0 bundles.
KUBE_VERSIONS=${KUBE_VERSIONS:-"1.30.0 1.37.0"}
read -ra versions <<<"$KUBE_VERSIONS"
VALIDATOR_VERSION=1.37.0

# Run as a module: no dependence on where pip put the command.
validate() { python3 -m kubernetes_validate "$@"; }
if ! python3 -c 'import kubernetes_validate' >/dev/null 2>&1; then
    echo "installing kubernetes-validate $VALIDATOR_VERSION (PyPI)"
    python3 -m pip install --quiet --disable-pip-version-check "kubernetes-validate==$VALIDATOR_VERSION"
fi
echo "kubernetes-validate $(validate --version)"

# Each requested version must be one whose schemas are bundled (an unknown
# version makes the validator fail with an unhelpful message).
python3 - "${versions[@]}" <<'EOF'
import sys
import kubernetes_validate.utils as utils
have = sorted(set(utils.all_versions()), key=lambda v: tuple(map(int, v.split("."))))
missing = [v for v in sys.argv[1:] if v not in have]
if missing:
    sys.exit(f"kubernetes-validate has no schemas for {', '.join(missing)}; it has {', '.join(have)}")
EOF

status=0
manifests=$(find deploy/kubernetes -name '*.yaml' ! -name kustomization.yaml | sort)
for version in "${versions[@]}"; do
    for file in $manifests; do
        # Any line but an INFO "passed" (an ERROR, or a WARN such as an
        # unknown kind or apiVersion) fails the file.
        if ! out=$(validate --strict -k "$version" "$file" 2>&1); then
            status=1
        fi
        echo "$out"
        if grep -qv '^INFO .* passed ' <<<"$out"; then
            status=1
        fi
    done
done
if [ "$status" -ne 0 ]; then
    echo "FAILED: Kubernetes manifests do not validate"
    exit 1
fi

echo "cross-file checks"
python3 - <<'EOF'
import os, sys, tomllib, yaml

K = "deploy/kubernetes"
errors = []

def load(name):
    with open(os.path.join(K, name)) as f:
        return [d for d in yaml.safe_load_all(f) if d]

# kustomization.yaml: its resources exist; every manifest but the
# DaemonSet (its alternative) is listed.
kust = load("kustomization.yaml")[0]
if kust.get("kind") != "Kustomization" or kust.get("apiVersion") != "kustomize.config.k8s.io/v1beta1":
    errors.append("kustomization.yaml: not a kustomize.config.k8s.io/v1beta1 Kustomization")
known = {"apiVersion", "kind", "resources", "images", "namespace", "commonLabels", "labels",
         "patches", "configMapGenerator", "replicas", "namePrefix", "nameSuffix", "commonAnnotations"}
for key in set(kust) - known:
    errors.append(f"kustomization.yaml: unexpected key {key!r}")
listed = kust.get("resources", [])
for name in listed:
    if not os.path.isfile(os.path.join(K, name)):
        errors.append(f"kustomization.yaml: {name} does not exist")
for name in sorted(os.listdir(K)):
    if name.endswith(".yaml") and name not in listed and name not in ("kustomization.yaml", "daemonset.yaml"):
        errors.append(f"kustomization.yaml: {name} is not listed")

config_map = load("configmap.yaml")[0]
config = tomllib.loads(config_map["data"]["config.toml"])
server = config.get("server", {})
delay = server.get("shutdown_delay_ms", 0)
drain = server.get("drain_timeout_ms", 10000)

def port_of(address):
    return int(address.rsplit(":", 1)[1])

pods = {}
for name in ("deployment.yaml", "daemonset.yaml"):
    workload = load(name)[0]
    spec = workload["spec"]["template"]["spec"]
    pods[name] = spec
    grace = spec.get("terminationGracePeriodSeconds", 30)
    if grace * 1000 <= delay + drain:
        errors.append(f"{name}: terminationGracePeriodSeconds {grace} s does not cover "
                      f"shutdown_delay_ms {delay} + drain_timeout_ms {drain}")
    container = spec["containers"][0]
    resources = container["resources"]
    cpus = {str(resources["requests"]["cpu"]), str(resources["limits"]["cpu"])}
    if cpus != {str(server.get("shards"))}:
        errors.append(f"{name}: CPU request and limit {sorted(cpus)} must both equal shards = {server.get('shards')}")
    if resources["requests"]["memory"] != resources["limits"]["memory"]:
        errors.append(f"{name}: memory request and limit differ (not Guaranteed QoS)")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    if ports.get("http") != port_of(config["listen_address"]):
        errors.append(f"{name}: port http is not the config's listen_address")
    if ports.get("admin") != port_of(config["admin"]["listen_address"]):
        errors.append(f"{name}: port admin is not the config's [admin] listen_address")
    annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
    if annotations.get("prometheus.io/port") != str(ports.get("admin")):
        errors.append(f"{name}: prometheus.io/port is not the admin port")
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    cache = server.get("compile_cache_dir", "")
    if not cache.startswith(mounts.get("compile-cache", "?") + "/"):
        errors.append(f"{name}: compile_cache_dir {cache} is not a subdirectory of the compile-cache volume "
                      "(an emptyDir is writable by all, which the server refuses)")
    if mounts.get("config") != "/etc/serverless-wasm" or container.get("args") != ["/etc/serverless-wasm/config.toml"]:
        errors.append(f"{name}: the config must be mounted at /etc/serverless-wasm and passed as the argument")
if pods["deployment.yaml"]["containers"] != pods["daemonset.yaml"]["containers"]:
    errors.append("deployment.yaml and daemonset.yaml run different containers: keep them the same")

# The guests named in the image's and the ConfigMap's configs are the
# repository's samples, copied to /opt/serverless-wasm/samples.
with open("deploy/config.toml", "rb") as f:
    image_config = tomllib.load(f)
for source, cfg in (("configmap.yaml", config), ("deploy/config.toml", image_config)):
    for app in cfg.get("applications", []):
        path = app.get("file_path", "")
        prefix = "/opt/serverless-wasm/samples/"
        if path and not (path.startswith(prefix) and os.path.isfile("samples/" + path[len(prefix):])):
            errors.append(f"{source}: {path} is not one of the samples the image carries")

# The unit's TimeoutStopSec covers the drain of deploy/config.toml.
unit = {}
with open("deploy/systemd/serverless-wasm.service") as f:
    for line in f:
        if "=" in line and not line.lstrip().startswith(("#", ";")):
            key, value = line.strip().split("=", 1)
            unit[key] = value
timeout = unit.get("TimeoutStopSec", "90s")
seconds = int(timeout[:-1]) if timeout.endswith("s") else int(timeout)
image_server = image_config.get("server", {})
needed = image_server.get("shutdown_delay_ms", 0) + image_server.get("drain_timeout_ms", 10000)
if seconds * 1000 <= needed:
    errors.append(f"serverless-wasm.service: TimeoutStopSec {timeout} does not cover the drain of deploy/config.toml ({needed} ms)")
if "MemoryDenyWriteExecute" in unit:
    errors.append("serverless-wasm.service: MemoryDenyWriteExecute breaks wasmtime's compiled code")

for error in errors:
    print("ERROR", error)
if errors:
    sys.exit(1)
print("cross-file checks passed")
EOF

unit=deploy/systemd/serverless-wasm.service
if command -v systemd-analyze >/dev/null 2>&1; then
    # verify insists that ExecStart's binary exists: check a copy that
    # starts /bin/true instead, every other line unchanged. It reports bad
    # directives as warnings with exit code 0, so any output fails.
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"' EXIT
    sed 's#^ExecStart=/usr/local/bin/serverless-wasm #ExecStart=/bin/true #' "$unit" >"$dir/serverless-wasm.service"
    grep -q '^ExecStart=/bin/true ' "$dir/serverless-wasm.service" || { echo "FAILED: $unit: no ExecStart=/usr/local/bin/serverless-wasm"; exit 1; }
    out=$(systemd-analyze verify "$dir/serverless-wasm.service" 2>&1) || { echo "$out"; echo "FAILED: systemd-analyze verify $unit"; exit 1; }
    if [ -n "$out" ]; then
        echo "$out"; echo "FAILED: systemd-analyze verify $unit"; exit 1
    fi
    echo "systemd-analyze verify $unit: ok ($(systemd-analyze --version | head -1))"
else
    echo "systemd-analyze not found: $unit not verified"
fi
echo "deploy/ checks passed"

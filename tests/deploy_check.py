"""Checks deploy/: every Kubernetes manifest and the compose file parse as YAML, references
between them resolve, every router whose API listens beyond its pod or container gets its
API tokens from a Secret, and the pipelines they run are listed for `sluice validate`.

Prints one JSON object: {"errors": [...], "pipelines": [{"origin": ..., "toml": ...}],
"pipeline_files": [...]} (pipeline_files: repo paths the compose file runs).
"""
import glob
import json
import os
import re
import sys

import yaml

root = sys.argv[1]
errors = []
pipelines = []
pipeline_files = []


def where(path):
    return os.path.relpath(path, root)


# Kubernetes: every document names itself; ConfigMaps, Deployments, Services and HPAs refer
# to each other by name and labels.
docs = []
for path in sorted(glob.glob(os.path.join(root, "deploy/kubernetes/*.yaml"))):
    with open(path) as f:
        for doc in yaml.safe_load_all(f):
            if doc is None:
                continue
            for key in ("apiVersion", "kind", "metadata"):
                if key not in doc:
                    errors.append(f"{where(path)}: a document has no {key}")
            docs.append((path, doc))

by_kind = {}
for path, doc in docs:
    by_kind.setdefault(doc.get("kind"), {})[doc["metadata"]["name"]] = (path, doc)

for name, (path, doc) in by_kind.get("ConfigMap", {}).items():
    for key, value in (doc.get("data") or {}).items():
        if key.endswith(".toml"):
            pipelines.append({"origin": f"{where(path)}:{name}/{key}", "key": key, "toml": value})

workloads = {**by_kind.get("Deployment", {}), **by_kind.get("DaemonSet", {})}
for name, (path, doc) in workloads.items():
    pod = doc["spec"]["template"]
    selector = doc["spec"]["selector"]["matchLabels"]
    labels = pod["metadata"]["labels"]
    if any(labels.get(k) != v for k, v in selector.items()):
        errors.append(f"{where(path)}: {name}: selector does not match the pod labels")
    volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
    for volume in volumes.values():
        cm = volume.get("configMap", {}).get("name")
        if cm and cm not in by_kind.get("ConfigMap", {}):
            errors.append(f"{where(path)}: {name}: ConfigMap {cm} is not defined in deploy/kubernetes")
    for container in pod["spec"]["containers"]:
        args = container.get("args", [])
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in volumes:
                errors.append(f"{where(path)}: {name}: volume {mount['name']} is not defined")
        # An API beyond the pod needs tokens (the router refuses to start without): the
        # tokens file must come from a mounted Secret.
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        api = env.get("SLUICE_API")
        if api and not api.startswith("127."):
            tokens = env.get("SLUICE_API_TOKENS_FILE")
            secret_mounts = [m["mountPath"].rstrip("/") + "/" for m in container.get("volumeMounts", [])
                             if m["name"] in volumes and "secret" in volumes[m["name"]]]
            if not tokens:
                errors.append(f"{where(path)}: {name}: SLUICE_API={api} without SLUICE_API_TOKENS_FILE")
            elif not any(tokens.startswith(m) for m in secret_mounts):
                errors.append(f"{where(path)}: {name}: SLUICE_API_TOKENS_FILE {tokens} is not in a mounted Secret")
        for i, arg in enumerate(args):
            if arg == "--config":
                target = args[i + 1]
                key = os.path.basename(target)
                cms = [volumes[m["name"]]["configMap"]["name"] for m in container.get("volumeMounts", [])
                       if m["name"] in volumes and "configMap" in volumes[m["name"]]
                       and target.startswith(m["mountPath"].rstrip("/") + "/")]
                if not cms or key not in (by_kind["ConfigMap"][cms[0]][1].get("data") or {}):
                    errors.append(f"{where(path)}: {name}: --config {target} is not in a mounted ConfigMap")

for kind in ("Service",):
    for name, (path, doc) in by_kind.get(kind, {}).items():
        selector = doc["spec"].get("selector", {})
        if not any(all(w[1]["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in selector.items())
                   for w in workloads.values()):
            errors.append(f"{where(path)}: Service {name} selects no workload")

for name, (path, doc) in by_kind.get("HorizontalPodAutoscaler", {}).items():
    target = doc["spec"]["scaleTargetRef"]
    if target["name"] not in by_kind.get(target["kind"], {}):
        errors.append(f"{where(path)}: HPA {name} targets a missing {target['kind']} {target['name']}")

# Compose: every service that runs a pipeline runs one of pipelines/*.toml (the image copies
# pipelines/ to /etc/sluice/pipelines/).
compose_path = os.path.join(root, "deploy/docker/docker-compose.yml")
with open(compose_path) as f:
    compose = yaml.safe_load(f)
for name, service in compose.get("services", {}).items():
    command = service.get("command") or []
    for i, arg in enumerate(command):
        if arg == "--config":
            target = command[i + 1]
            match = re.fullmatch(r"/etc/sluice/pipelines/(.+\.toml)", target)
            if not match or not os.path.exists(os.path.join(root, "pipelines", match.group(1))):
                errors.append(f"{where(compose_path)}: {name}: --config {target} is not a file in pipelines/")
            else:
                pipeline_files.append("pipelines/" + match.group(1))
    # The image's API listens on 0.0.0.0: a router needs the tokens secret.
    if "up" in command:
        secrets = service.get("secrets") or []
        if "sluice-api-tokens" not in secrets or "sluice-api-tokens" not in (compose.get("secrets") or {}):
            errors.append(f"{where(compose_path)}: {name}: runs a router without the sluice-api-tokens secret")
    for dep in service.get("depends_on", []):
        if dep not in compose["services"]:
            errors.append(f"{where(compose_path)}: {name}: depends on unknown service {dep}")

print(json.dumps({"errors": errors, "pipelines": pipelines, "pipeline_files": sorted(set(pipeline_files))}))

"""Checks deploy/: every Kubernetes manifest and the compose file parse as YAML, references
between them resolve, every router whose API listens beyond its pod or container gets its
API tokens from a Secret, aggregators are StatefulSets with a claim per pod, a headless
Service for their peers and a PodDisruptionBudget (in compose: named volumes and every
aggregator as a peer), the systemd units run files of pipelines/ (journald only in the
systemd-journal group), and the pipelines they run are listed for `sluice validate`.

Prints one JSON object: {"errors": [...], "pipelines": [{"origin": ..., "toml": ...}],
"pipeline_files": [...]} (pipeline_files: repo paths the compose file and the systemd units
run).
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

workloads = {**by_kind.get("Deployment", {}), **by_kind.get("DaemonSet", {}),
             **by_kind.get("StatefulSet", {})}


def claim_templates(doc):
    return {c["metadata"]["name"]: {"persistentVolumeClaim": c} for c in doc["spec"].get("volumeClaimTemplates", [])}


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


for name, (path, doc) in workloads.items():
    pod = doc["spec"]["template"]
    selector = doc["spec"]["selector"]["matchLabels"]
    labels = pod["metadata"]["labels"]
    if any(labels.get(k) != v for k, v in selector.items()):
        errors.append(f"{where(path)}: {name}: selector does not match the pod labels")
    volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
    volumes.update(claim_templates(doc))
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

# A DaemonSet is a node agent: it reads the kubelet's files read-only, keeps its
# checkpoints on the node, watches pods through a service account allowed exactly that, knows
# its node, runs on every node and is bounded in memory.
def grants_pod_watch(role):
    verbs = set()
    for rule in role.get("rules", []):
        if "" in rule.get("apiGroups", []) and "pods" in rule.get("resources", []):
            verbs.update(rule.get("verbs", []))
    return {"get", "list", "watch"} <= verbs


for name, (path, doc) in by_kind.get("DaemonSet", {}).items():
    spec = doc["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    account = spec.get("serviceAccountName")
    if account not in by_kind.get("ServiceAccount", {}):
        errors.append(f"{where(path)}: {name}: serviceAccountName {account} is not defined")
    bound = [b for _, b in by_kind.get("ClusterRoleBinding", {}).values()
             if any(s.get("kind") == "ServiceAccount" and s.get("name") == account for s in b.get("subjects", []))
             and b["roleRef"]["kind"] == "ClusterRole"
             and grants_pod_watch(by_kind.get("ClusterRole", {}).get(b["roleRef"]["name"], (None, {}))[1])]
    if not bound:
        errors.append(f"{where(path)}: {name}: no ClusterRoleBinding gives {account} get/list/watch on pods")
    if not any(t.get("operator") == "Exists" and "key" not in t for t in spec.get("tolerations", [])):
        errors.append(f"{where(path)}: {name}: does not tolerate every taint (runs on some nodes only)")
    for container in spec["containers"]:
        mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
        logs = mounts.get("/var/log/pods")
        if not logs or not logs.get("readOnly") or volumes.get(logs["name"], {}).get("hostPath", {}).get("path") != "/var/log/pods":
            errors.append(f"{where(path)}: {name}: /var/log/pods is not the node's, mounted read-only")
        env = {e["name"]: e for e in container.get("env", [])}
        node = env.get("SLUICE_NODE_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if node != "spec.nodeName":
            errors.append(f"{where(path)}: {name}: SLUICE_NODE_NAME is not the downward API's spec.nodeName")
        data = env.get("SLUICE_DATA_DIR", {}).get("value")
        data_mount = mounts.get(data)
        if not data_mount or "hostPath" not in volumes.get(data_mount["name"], {}):
            errors.append(f"{where(path)}: {name}: SLUICE_DATA_DIR {data} (checkpoints) is not on a hostPath")
        if "memory" not in container.get("resources", {}).get("limits", {}):
            errors.append(f"{where(path)}: {name}: no memory limit")

# An aggregator keeps a store: it is a StatefulSet whose store and buffers are on a claim
# per pod, found by its peers through a headless Service (peers_dns), and disrupted one pod
# at a time (a PodDisruptionBudget selects it).
for name, (path, doc) in workloads.items():
    spec = doc["spec"]["template"]["spec"]
    runs_aggregator = any("/etc/sluice/aggregator.toml" in c.get("args", []) for c in spec["containers"])
    if not runs_aggregator:
        continue
    if doc["kind"] != "StatefulSet":
        errors.append(f"{where(path)}: {name}: an aggregator is a {doc['kind']}, not a StatefulSet (its store would not outlive the pod)")
        continue
    labels = doc["spec"]["template"]["metadata"]["labels"]
    claims = claim_templates(doc)
    headless = by_kind.get("Service", {}).get(doc["spec"].get("serviceName"), (None, {}))[1]
    if headless.get("spec", {}).get("clusterIP") != "None" or not selects(headless["spec"].get("selector"), labels):
        errors.append(f"{where(path)}: {name}: serviceName is not a headless Service selecting its pods")
    for container in spec["containers"]:
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
        data = env.get("SLUICE_DATA_DIR")
        if data not in mounts or mounts[data]["name"] not in claims:
            errors.append(f"{where(path)}: {name}: SLUICE_DATA_DIR {data} is not on a volumeClaimTemplate")
        dns = env.get("SLUICE_PEERS_DNS") or ""
        host, _, port = dns.rpartition(":")
        service = by_kind.get("Service", {}).get(host.split(".")[0], (None, {}))[1]
        ports = [str(p.get("port")) for p in service.get("spec", {}).get("ports", [])]
        if service is not headless or port not in ports:
            errors.append(f"{where(path)}: {name}: SLUICE_PEERS_DNS {dns!r} is not its headless Service's name and port")
    if not any(selects(pdb["spec"].get("selector", {}).get("matchLabels"), labels)
               for _, pdb in by_kind.get("PodDisruptionBudget", {}).values()):
        errors.append(f"{where(path)}: {name}: no PodDisruptionBudget selects it")

for name, (path, doc) in by_kind.get("PodDisruptionBudget", {}).items():
    selector = doc["spec"].get("selector", {}).get("matchLabels")
    if not any(selects(selector, w[1]["spec"]["template"]["metadata"]["labels"]) for w in workloads.values()):
        errors.append(f"{where(path)}: PodDisruptionBudget {name} selects no workload")

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

# Compose aggregators: each keeps its store on a named volume and lists every aggregator
# (itself included) in SLUICE_PEERS, so a query on any answers for all.
aggregators = [name for name, service in compose.get("services", {}).items()
               if "/etc/sluice/pipelines/aggregator.toml" in (service.get("command") or [])]
for name in aggregators:
    service = compose["services"][name]
    peers = (service.get("environment") or {}).get("SLUICE_PEERS") or ""
    listed = sorted(p.strip() for p in peers.split(",") if p.strip())
    expected = sorted(f"http://{a}:8686" for a in aggregators)
    if listed != expected:
        errors.append(f"{where(compose_path)}: {name}: SLUICE_PEERS {peers!r} is not every aggregator {expected}")
    data = [v.split(":")[0] for v in service.get("volumes", []) if isinstance(v, str) and v.split(":")[1:2] == ["/data"]]
    if not data or data[0] not in (compose.get("volumes") or {}):
        errors.append(f"{where(compose_path)}: {name}: /data is not on a named volume")

# systemd: each unit runs the pipeline its install comment copies from pipelines/ to the
# path its ExecStart reads (`install ... pipelines/X.toml /etc/sluice/Y.toml`); a unit that
# reads the journal is in the group allowed to.
for path in sorted(glob.glob(os.path.join(root, "deploy/systemd/*.service"))):
    with open(path) as f:
        text = f.read()
    start = re.search(r"^ExecStart=.*--config (\S+)", text, re.M)
    if not start:
        errors.append(f"{where(path)}: ExecStart runs no --config")
        continue
    target = start.group(1)
    install = re.search(r"install .*?(pipelines/\S+\.toml) " + re.escape(target) + r"\s*$", text, re.M)
    if not install or not os.path.exists(os.path.join(root, install.group(1))):
        errors.append(f"{where(path)}: no install line copies a file of pipelines/ to {target}")
        continue
    pipeline_files.append(install.group(1))
    with open(os.path.join(root, install.group(1))) as f:
        if 'type = "journald"' in f.read() and not re.search(r"^SupplementaryGroups=.*\bsystemd-journal\b", text, re.M):
            errors.append(f"{where(path)}: runs a journald source without SupplementaryGroups=systemd-journal")

print(json.dumps({"errors": errors, "pipelines": pipelines, "pipeline_files": sorted(set(pipeline_files))}))

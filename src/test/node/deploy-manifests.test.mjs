// deploy/k8s and deploy/grafana, checked (run by DeployManifestsIT with node --test, cwd the test
// folder, REPO the repository): every Kubernetes object against its schema (npm kubernetes-models,
// the API's OpenAPI schemas compiled), then against this server: the probes' paths answer, the
// settings are ones the server reads, the selectors meet, and every metric the dashboard plots is
// one the server exports.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { Deployment } from "kubernetes-models/apps/v1";
import { PersistentVolumeClaim, Secret, Service } from "kubernetes-models/v1";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const repo = process.env.REPO, base = process.env.ROLLOUT_URL;
const k8s = join(repo, "deploy/k8s");
const MODELS = { "apps/v1/Deployment": Deployment, "v1/Service": Service, "v1/PersistentVolumeClaim": PersistentVolumeClaim,
  "v1/Secret": Secret, "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor };

function load() {
  const objects = [];
  for (const file of readdirSync(k8s).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")) {
    for (const doc of parseAllDocuments(readFileSync(join(k8s, file), "utf8"))) {
      assert.deepEqual(doc.errors, [], file);
      objects.push({ file, object: doc.toJS() });
    }
  }
  return objects;
}
const objects = load();
const find = (kind) => objects.filter((o) => o.object.kind === kind).map((o) => o.object);
const subset = (selector, labels) => Object.entries(selector).every(([k, v]) => labels[k] === v);

test("every object validates against its Kubernetes schema, and kustomize lists every file", () => {
  for (const { file, object } of objects) {
    const Model = MODELS[object.apiVersion + "/" + object.kind];
    assert.ok(Model, file + ": no schema for " + object.apiVersion + " " + object.kind);
    assert.doesNotThrow(() => new Model(object).validate(), file + ": " + object.kind + " " + object.metadata?.name);
  }
  const kustomization = parseAllDocuments(readFileSync(join(k8s, "kustomization.yaml"), "utf8"))[0].toJS();
  assert.deepEqual([...kustomization.resources].sort(), [...new Set(objects.map((o) => o.file))].sort());
  // the check can fail: a port given as a word is refused
  const broken = structuredClone(find("Deployment")[0]);
  broken.spec.template.spec.containers[0].ports[0].containerPort = "http";
  assert.throws(() => new Deployment(broken).validate());
});

test("the deployment matches the server: port, probes, settings", async () => {
  const [deployment] = find("Deployment");
  const pod = deployment.spec.template;
  assert.ok(subset(deployment.spec.selector.matchLabels, pod.metadata.labels));
  const [container] = pod.spec.containers;
  const port = Number(/name="http.port" defaultValue="(\d+)"/.exec(readFileSync(join(repo, "src/main/liberty/config/server.xml"), "utf8"))[1]);
  assert.equal(container.ports.find((p) => p.name === "http").containerPort, port);
  assert.equal(pod.metadata.annotations["prometheus.io/port"], String(port));
  for (const [probe, path] of [["startupProbe", "/health/started"], ["readinessProbe", "/health/ready"], ["livenessProbe", "/health/live"]]) {
    assert.equal(container[probe].httpGet.path, path, probe);
    assert.equal(container[probe].httpGet.port, "http", probe);
    assert.equal((await fetch(base + path)).status, 200, path + " on the running server");
  }
  assert.equal((await fetch(base + pod.metadata.annotations["prometheus.io/path"])).status, 200);
  // every ROLLOUT_* variable is a key the server reads (MicroProfile Config's environment mapping)
  const keys = new Set(readFileSync(join(repo, "src/main/resources/META-INF/microprofile-config.properties"), "utf8")
    .split("\n").map((l) => /^#?(rollout\.[\w.-]+)=/.exec(l)?.[1]).filter(Boolean)
    .map((k) => k.replace(/[^A-Za-z0-9]/g, "_").toUpperCase()));
  for (const env of container.env.filter((e) => e.name.startsWith("ROLLOUT_"))) assert.ok(keys.has(env.name), env.name + " is not a setting");
  const secrets = new Map(find("Secret").map((s) => [s.metadata.name, s]));
  for (const env of container.env.filter((e) => e.valueFrom)) {
    const ref = env.valueFrom.secretKeyRef;
    assert.ok(secrets.get(ref.name)?.stringData?.[ref.key] !== undefined, env.name + ": " + ref.name + "/" + ref.key);
  }
  const claims = new Set(find("PersistentVolumeClaim").map((c) => c.metadata.name));
  for (const v of pod.spec.volumes.filter((v) => v.persistentVolumeClaim)) assert.ok(claims.has(v.persistentVolumeClaim.claimName));
});

test("services select the pods, and the monitor one service", () => {
  const pod = find("Deployment")[0].spec.template;
  const portNames = new Set(pod.spec.containers[0].ports.map((p) => p.name));
  const services = find("Service");
  for (const s of services) {
    assert.ok(subset(s.spec.selector, pod.metadata.labels), s.metadata.name);
    for (const p of s.spec.ports) assert.ok(portNames.has(p.targetPort), s.metadata.name + ": " + p.targetPort);
  }
  assert.equal(services.filter((s) => s.spec.clusterIP === "None").length, 1, "one headless service for data-parallel replicas");
  for (const m of find("ServiceMonitor")) {
    const picked = services.filter((s) => subset(m.spec.selector.matchLabels, s.metadata.labels));
    assert.equal(picked.length, 1, "scrape each server once");
    assert.ok(picked[0].spec.ports.some((p) => p.name === m.spec.endpoints[0].port));
  }
});

test("the Grafana dashboard plots metrics the server exports", async () => {
  const dashboard = JSON.parse(readFileSync(join(repo, "deploy/grafana/rollout-server.json"), "utf8"));
  const exported = new Set((await (await fetch(base + "/metrics")).text()).split("\n")
    .filter((l) => l && !l.startsWith("#")).map((l) => /^[^{ ]+/.exec(l)[0]));
  const ids = dashboard.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, "panel ids are unique");
  let used = 0;
  for (const panel of dashboard.panels) {
    assert.ok(panel.targets.length > 0, panel.title);
    for (const t of panel.targets) {
      for (const name of t.expr.match(/\b(?:sglang|rollout):[a-z0-9_]+/g)) {
        assert.ok(exported.has(name), panel.title + ": " + name + " is not exported");
        used++;
      }
    }
  }
  assert.ok(used > 20);
  assert.ok(existsSync(join(repo, "deploy/Containerfile")));
});

// Validates the rendered manifests of one kustomize overlay (tests/deploy/kubernetes_test.sh):
//
//   node validate.mjs --overlay embedded|shared|dev-postgres RENDERED.yaml
//
// 1. Schemas: every object is built as its kubernetes-models class (prometheus-operator's for
//    ServiceMonitor and PrometheusRule) and validated with the package's compiled OpenAPI schema (types,
//    required fields, enums, formats). A kind without a model is an error.
// 2. Unknown fields: the same objects, as TypeScript object literals typed with the
//    package's interfaces, go through the TypeScript compiler, whose excess-property check
//    refuses any field the API does not define, at any depth (what `kubectl --validate=strict`
//    does against a server).
// 3. Deployment rules: every container has startup, readiness and liveness probes, memory
//    and CPU requests, a memory limit, and a non-root, read-only-root, no-escalation
//    securityContext; calibd's memory limit covers the memory flags of its ConfigMap; its
//    probes use the health port; Services, the ServiceMonitor, the PodDisruptionBudget and
//    the NetworkPolicy select its pods; per-overlay shape (StatefulSet + claim for
//    embedded, Secret URL + HPA for shared).
// Prints one line per failure and a summary; exit 0 only when there is none.
import fs from "node:fs";
import path from "node:path";
import yaml from "js-yaml";
import ts from "typescript";

const args = process.argv.slice(2);
const overlay = args[args.indexOf("--overlay") + 1];
const file = args[args.length - 1];
const docs = yaml.loadAll(fs.readFileSync(file, "utf8")).filter((d) => d);
const failures = [];
const fail = (what, msg) => failures.push(`${what}: ${msg}`);
const id = (d) => `${d.kind}/${d.metadata?.name}`;

// ---------------------------------------------------------------- 1. schemas
function modelModule(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  if (group === "monitoring.coreos.com") {
    return `@kubernetes-models/prometheus-operator/${group}/${version}/${kind}`;
  }
  return group ? `kubernetes-models/${group}/${version}/${kind}` : `kubernetes-models/${version}/${kind}`;
}

for (const d of docs) {
  if (!d.apiVersion || !d.kind) {
    fail("document", "no apiVersion/kind");
    continue;
  }
  let mod;
  try {
    mod = await import(modelModule(d.apiVersion, d.kind));
  } catch (e) {
    fail(id(d), `no schema for ${d.apiVersion} ${d.kind}`);
    continue;
  }
  try {
    new mod[d.kind](d).validate();
  } catch (e) {
    fail(id(d), `schema: ${e.message.split("\n").slice(0, 6).join("; ")}`);
  }
}

// ---------------------------------------------------------------- 2. unknown fields
{
  // Next to node_modules (this script runs from the install directory), so the compiler
  // resolves the packages' type declarations.
  const here = path.dirname(new URL(import.meta.url).pathname);
  const dir = fs.mkdtempSync(path.join(here, ".check-"));
  const src = path.join(dir, "objects.ts");
  let text = "";
  const ranges = [];  // [first line, last line, object]
  docs.forEach((d, i) => {
    if (!d.apiVersion || !d.kind) return;
    text += `import type { I${d.kind} as T${i} } from "${modelModule(d.apiVersion, d.kind)}";\n`;
  });
  docs.forEach((d, i) => {
    if (!d.apiVersion || !d.kind) return;
    const first = text.split("\n").length;
    text += `export const o${i}: T${i} = ${JSON.stringify(d, null, 1)};\n`;
    ranges.push([first, text.split("\n").length - 1, d]);
  });
  fs.writeFileSync(src, text);
  const program = ts.createProgram([src], {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: [],
  });
  const lines = text.split("\n");
  for (const diag of ts.getPreEmitDiagnostics(program)) {
    const msg = ts.flattenDiagnosticMessageText(diag.messageText, "\n").split("\n")[0];
    if (!diag.file || diag.file.fileName !== src) {
      fail("typescript", msg);
      continue;
    }
    const { line } = diag.file.getLineAndCharacterOfPosition(diag.start);
    const r = ranges.find(([a, b]) => line + 1 >= a && line + 1 <= b);
    fail(r ? id(r[2]) : "typescript", `${msg} (at ${lines[line].trim().slice(0, 80)})`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------- 3. deployment rules
// Every object but the Namespace in one namespace (a resource an overlay adds without one
// would land in the user's current namespace, away from the rest).
for (const d of docs) {
  if (d.kind !== "Namespace" && d.metadata?.namespace !== "calibd") fail(id(d), "not in namespace calibd");
}

const byKind = (k) => docs.filter((d) => d.kind === k);
const workloads = docs.filter((d) => ["Deployment", "StatefulSet", "DaemonSet"].includes(d.kind));
const bytes = (q) => {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(q));
  if (!m) return NaN;
  const f = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Number(m[1]) * (m[2] ? f[m[2]] : 1);
};
const matches = (selector, labels) =>
  selector && Object.keys(selector).length > 0 &&
  Object.entries(selector).every(([k, v]) => labels?.[k] === v);

for (const w of workloads) {
  const pod = w.spec.template.spec;
  const podLabels = w.spec.template.metadata?.labels;
  if (!matches(w.spec.selector.matchLabels, podLabels)) fail(id(w), "selector does not match the pod labels");
  const grace = pod.terminationGracePeriodSeconds ?? 30;
  for (const c of pod.containers) {
    const where = `${id(w)} container ${c.name}`;
    for (const p of ["startupProbe", "readinessProbe", "livenessProbe"]) {
      if (!c[p]) fail(where, `no ${p}`);
    }
    const res = c.resources || {};
    if (!res.requests?.cpu) fail(where, "no CPU request");
    if (!res.requests?.memory) fail(where, "no memory request");
    if (!res.limits?.memory) fail(where, "no memory limit");
    const sc = c.securityContext || {};
    const psc = pod.securityContext || {};
    if ((sc.runAsNonRoot ?? psc.runAsNonRoot) !== true) fail(where, "runAsNonRoot is not true");
    if ((sc.runAsUser ?? psc.runAsUser) === 0) fail(where, "runs as uid 0");
    if (sc.readOnlyRootFilesystem !== true) fail(where, "root filesystem not read-only");
    if (sc.allowPrivilegeEscalation !== false) fail(where, "privilege escalation allowed");
    if (!(sc.capabilities?.drop || []).includes("ALL")) fail(where, "capabilities not dropped");
    const mounts = new Set((c.volumeMounts || []).map((m) => m.name));
    const claims = new Set((w.spec.volumeClaimTemplates || []).map((v) => v.metadata.name));
    for (const m of mounts) {
      if (!(pod.volumes || []).some((v) => v.name === m) && !claims.has(m)) fail(where, `mount of unknown volume ${m}`);
    }
    if (c.livenessProbe) {
      const window = (c.livenessProbe.periodSeconds ?? 10) * (c.livenessProbe.failureThreshold ?? 3);
      if (c.name === "calibd" && window < grace) {
        fail(where, `liveness window ${window}s is shorter than the ${grace}s grace period`);
      }
    }
  }
}

// calibd itself.
const calibdWorkloads = workloads.filter((w) => w.metadata.name === "calibd");
if (overlay !== "dev-postgres" && calibdWorkloads.length !== 1) {
  fail("calibd", `expected one calibd workload, found ${calibdWorkloads.length}`);
}
for (const w of calibdWorkloads) {
  const pod = w.spec.template.spec;
  const c = pod.containers.find((x) => x.name === "calibd");
  if (!c) {
    fail(id(w), "no calibd container");
    continue;
  }
  const where = `${id(w)} calibd`;
  const ports = Object.fromEntries((c.ports || []).map((p) => [p.name, p.containerPort]));
  for (const name of ["grpc", "metrics"]) if (!ports[name]) fail(where, `no port named ${name}`);
  // Flags: the ConfigMap(s) of envFrom, then env (which wins, as in Kubernetes).
  const flags = {};
  for (const ef of c.envFrom || []) {
    const cm = byKind("ConfigMap").find((m) => m.metadata.name === ef.configMapRef?.name);
    if (!cm) fail(where, `envFrom names a missing ConfigMap ${ef.configMapRef?.name}`);
    else Object.assign(flags, cm.data);
  }
  for (const e of c.env || []) flags[e.name] = e.value ?? e.valueFrom;
  const listenPort = (v) => Number(String(v || "").split(":").pop());
  const healthPort = listenPort(flags.CALIBD_HEALTH_LISTEN);
  if (!healthPort) fail(where, "CALIBD_HEALTH_LISTEN is not set (kubelet gRPC probes cannot speak TLS)");
  if (listenPort(flags.CALIBD_LISTEN) !== ports.grpc) fail(where, "CALIBD_LISTEN is not the grpc port");
  if (listenPort(flags.CALIBD_METRICS_LISTEN) !== ports.metrics) fail(where, "CALIBD_METRICS_LISTEN is not the metrics port");
  for (const p of ["startupProbe", "readinessProbe", "livenessProbe"]) {
    if (c[p] && !c[p].grpc) fail(where, `${p} is not a native gRPC probe`);
    if (c[p]?.grpc && c[p].grpc.port !== healthPort) fail(where, `${p} is not on the health port ${healthPort}`);
  }
  if (!(Number(flags.CALIBD_MAX_CONNECTION_AGE_SECONDS) > 0)) fail(where, "no CALIBD_MAX_CONNECTION_AGE_SECONDS (connections never rebalance)");
  // Memory: every budget the flags set, plus 512 MiB for the process, fits the limit, and
  // the budget for frames in flight is set explicitly.
  const limit = bytes(c.resources?.limits?.memory);
  const budgets = ["CALIBD_CACHE_BYTES", "CALIBD_BUFFER_POOL_BYTES", "CALIBD_FRAME_MEMORY_BYTES",
    "CALIBD_COMBINE_MEMORY_BYTES"];
  let sum = 0;
  for (const b of budgets) {
    const v = Number(flags[b]);
    if (!(v > 0)) fail(where, `${b} is not set`);
    else sum += v;
  }
  if (sum + 512 * 2 ** 20 > limit) {
    fail(where, `memory budgets ${(sum / 2 ** 30).toFixed(2)} GiB + 0.5 GiB exceed the ${c.resources?.limits?.memory} limit`);
  }
  if (bytes(c.resources?.requests?.memory) !== limit) fail(where, "memory request differs from the limit");
  const grace = Number(flags.CALIBD_GRACE_SECONDS);
  if (!(grace > 0 && grace < (pod.terminationGracePeriodSeconds ?? 30))) {
    fail(where, "CALIBD_GRACE_SECONDS must be set and shorter than terminationGracePeriodSeconds");
  }
  if (overlay === "shared") {
    const store = (c.env || []).find((e) => e.name === "CALIBD_STORE");
    const ref = store?.valueFrom?.secretKeyRef;
    if (!ref) fail(where, "CALIBD_STORE does not come from a Secret");
    else if (!byKind("Secret").some((s) => s.metadata.name === ref.name)) fail(where, `no Secret ${ref.name}`);
    if (w.kind !== "Deployment" || !(w.spec.replicas >= 2)) fail(where, "shared: expected a Deployment of >= 2 replicas");
    const hpa = byKind("HorizontalPodAutoscaler")[0];
    if (!hpa || hpa.spec.scaleTargetRef.kind !== "Deployment" || hpa.spec.scaleTargetRef.name !== "calibd") {
      fail(where, "shared: no HorizontalPodAutoscaler for the Deployment");
    } else if (!(hpa.spec.minReplicas >= 2)) fail(id(hpa), "minReplicas < 2");
  }
  if (overlay === "embedded") {
    if (w.kind !== "StatefulSet" || w.spec.replicas !== 1) fail(where, "embedded: expected a StatefulSet of 1 replica");
    const claim = (w.spec.volumeClaimTemplates || [])[0]?.metadata.name;
    const mount = (c.volumeMounts || []).find((m) => m.name === claim);
    if (!claim || !mount || !String(flags.CALIBD_STORE).startsWith(mount.mountPath + "/")) {
      fail(where, "embedded: the store is not on the volume claim");
    }
    if (byKind("Deployment").length || byKind("HorizontalPodAutoscaler").length) {
      fail(where, "embedded: a Deployment or HPA is left (two writers on one store)");
    }
    if (!byKind("Service").some((s) => s.metadata.name === w.spec.serviceName && s.spec.clusterIP === "None")) {
      fail(where, "embedded: serviceName is not a headless Service");
    }
  }
  // Services, ServiceMonitor, PDB, NetworkPolicy select the pods.
  const podLabels = w.spec.template.metadata.labels;
  const services = byKind("Service").filter((s) => matches(s.spec.selector, podLabels));
  if (!services.some((s) => s.spec.clusterIP === "None")) fail(where, "no headless Service");
  if (!services.some((s) => s.spec.clusterIP !== "None" && (s.spec.type ?? "ClusterIP") === "ClusterIP" &&
      s.spec.ports.some((p) => p.targetPort === "grpc"))) fail(where, "no ClusterIP Service for grpc");
  for (const s of services) {
    for (const p of s.spec.ports) {
      if (typeof p.targetPort === "string" && !ports[p.targetPort]) fail(id(s), `targetPort ${p.targetPort} is no container port`);
    }
  }
  const sm = byKind("ServiceMonitor");
  if (!sm.some((m) => services.some((s) => matches(m.spec.selector.matchLabels, s.metadata.labels) &&
      m.spec.endpoints.some((e) => s.spec.ports.some((p) => p.name === e.port && p.targetPort === "metrics"))))) {
    fail(where, "no ServiceMonitor scraping the metrics port");
  }
  // The alert rules for the operator (the same as deploy/monitoring/calibd-rules.yaml: the
  // deploy_prometheusrule test checks that; here, that they are rendered and well-formed).
  const alerts = byKind("PrometheusRule").flatMap((r) => r.spec.groups.flatMap((g) => g.rules.map((x) => x.alert)));
  for (const a of ["CalibdReplicaDown", "CalibdStoreUnavailable"]) {
    if (!alerts.includes(a)) fail(where, `no PrometheusRule with the alert ${a}`);
  }
  if (!byKind("PodDisruptionBudget").some((p) => matches(p.spec.selector.matchLabels, podLabels))) fail(where, "no PodDisruptionBudget");
  if (!byKind("NetworkPolicy").some((p) => matches(p.spec.podSelector.matchLabels, podLabels))) fail(where, "no NetworkPolicy");
  const secrets = (pod.volumes || []).filter((v) => v.secret).map((v) => v.secret.secretName);
  if (!secrets.includes("calibd-tokens")) fail(where, "tokens are not mounted from a Secret");
}

for (const f of failures) console.log(`FAIL ${overlay}: ${f}`);
console.log(`${overlay}: ${docs.length} objects (${[...new Set(docs.map((d) => d.kind))].join(", ")}), ` +
  `${failures.length} failures`);
process.exit(failures.length ? 1 : 0);

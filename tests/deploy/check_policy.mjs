// node check_policy.mjs RENDERED [--expect WHAT,...] — what the schema cannot see, on the objects
// of one rendered kustomization (kubectl kustomize output) or manifest:
//   - Pod Security "restricted" (kubernetes.io/docs/concepts/security/pod-security-standards) for
//     every pod template: no host namespaces, ports or paths, not privileged, runAsNonRoot with a
//     non-zero user, no privilege escalation, every capability dropped (NET_BIND_SERVICE the only
//     one added back), seccomp RuntimeDefault or Localhost, only the restricted volume types;
//   - this project's rules: no service-account token, read-only root filesystem, CPU/memory
//     requests and limits, tagged images; for Jobs: restartPolicy Never, a podFailurePolicy, a
//     deadline and a TTL, the termination message (FallbackToLogsOnError), and a GPU Job that passes
//     --backend cuda or cublas (so it fails instead of passing on the CPU);
//   - the objects agree: every mounted volume and claim exists, a Service selects a workload and
//     targets one of its ports, a ReadWriteOnce claim that a Job writes is mounted read-only by
//     anything else and shared with a Deployment only at 0 replicas (one node attaches it at a
//     time: the Job's pod must get it), and TensorBoard's --logdir covers the training Job's --log_dir;
//   - --expect: what the overlay's name promises: aks (tolerates the sku=gpu:NoSchedule taint),
//     gke (selects cloud.google.com/gke-accelerator), eks (selects amd64 nodes), persistent
//     (the training Job's logs and checkpoints on a claim, TensorBoard serving it), benchmark (the
//     benchmark JSON and the run's result.json on a claim), plain (no cloud-specific scheduling).
import fs from "node:fs";
import yaml from "js-yaml";

const argv = process.argv.slice(2);
const file = argv[0];
const expectIdx = argv.indexOf("--expect");
const expects = expectIdx > 0 ? argv[expectIdx + 1].split(",").filter(Boolean) : [];
const docs = yaml.loadAll(fs.readFileSync(file, "utf8")).filter(Boolean);
let failures = 0, checks = 0;
const check = (ok, what) => {
  checks++;
  if (!ok) {
    failures++;
    console.log(`FAIL ${what}`);
  }
  return ok;
};
const id = (d) => `${d.kind}/${d.metadata?.name}`;

function podSpecOf(d) {
  switch (d.kind) {
    case "Pod": return { spec: d.spec, labels: d.metadata?.labels ?? {} };
    case "Job": case "Deployment": case "StatefulSet": case "DaemonSet": case "ReplicaSet":
      return { spec: d.spec.template.spec, labels: d.spec.template.metadata?.labels ?? {} };
    case "CronJob": return { spec: d.spec.jobTemplate.spec.template.spec, labels: d.spec.jobTemplate.spec.template.metadata?.labels ?? {} };
    default: return null;
  }
}
const workloads = docs.map((d) => ({ d, ...(podSpecOf(d) ?? {}) })).filter((w) => w.spec);
const claims = Object.fromEntries(docs.filter((d) => d.kind === "PersistentVolumeClaim").map((d) => [d.metadata.name, d]));
const allContainers = (s) => [...(s.initContainers ?? []), ...s.containers, ...(s.ephemeralContainers ?? [])];
const flag = (args, name) => {
  for (let i = 0; i < (args ?? []).length; i++) {
    if (args[i] === `--${name}`) return args[i + 1];
    if (args[i].startsWith(`--${name}=`)) return args[i].slice(name.length + 3);
  }
  return undefined;
};

// ---- Pod Security "restricted" ----
const restrictedVolumes = ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];
const safeSysctls = ["kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
  "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time",
  "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"];
const seLinuxTypes = [undefined, "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"];
for (const { d, spec } of workloads) {
  const w = id(d);
  const psc = spec.securityContext ?? {};
  check(!spec.hostNetwork && !spec.hostPID && !spec.hostIPC, `${w}: host namespaces`);
  for (const v of spec.volumes ?? []) {
    const kind = Object.keys(v).find((k) => k !== "name");
    check(restrictedVolumes.includes(kind), `${w}: volume ${v.name} is ${kind}, not a restricted volume type`);
  }
  for (const s of psc.sysctls ?? []) check(safeSysctls.includes(s.name), `${w}: sysctl ${s.name}`);
  check(seLinuxTypes.includes(psc.seLinuxOptions?.type) && !psc.seLinuxOptions?.user && !psc.seLinuxOptions?.role, `${w}: SELinux options`);
  check(!["Unconfined"].includes(psc.appArmorProfile?.type), `${w}: AppArmor Unconfined`);
  for (const c of allContainers(spec)) {
    const sc = c.securityContext ?? {};
    const where = `${w} container ${c.name}`;
    check(!sc.privileged, `${where}: privileged`);
    check(sc.allowPrivilegeEscalation === false, `${where}: allowPrivilegeEscalation must be false`);
    check((sc.runAsNonRoot ?? psc.runAsNonRoot) === true, `${where}: runAsNonRoot must be true`);
    check((sc.runAsUser ?? psc.runAsUser) !== 0, `${where}: runAsUser 0`);
    const seccomp = sc.seccompProfile?.type ?? psc.seccompProfile?.type;
    check(["RuntimeDefault", "Localhost"].includes(seccomp), `${where}: seccompProfile must be RuntimeDefault or Localhost (is ${seccomp})`);
    check((sc.capabilities?.drop ?? []).includes("ALL"), `${where}: capabilities must drop ALL`);
    check((sc.capabilities?.add ?? []).every((cap) => cap === "NET_BIND_SERVICE"), `${where}: capabilities added`);
    check(!sc.procMount || sc.procMount === "Default", `${where}: procMount`);
    check(seLinuxTypes.includes(sc.seLinuxOptions?.type) && !sc.seLinuxOptions?.user && !sc.seLinuxOptions?.role, `${where}: SELinux options`);
    check(sc.appArmorProfile?.type !== "Unconfined", `${where}: AppArmor Unconfined`);
    check((c.ports ?? []).every((p) => !p.hostPort), `${where}: hostPort`);
  }
}

// ---- this project's rules ----
for (const { d, spec } of workloads) {
  const w = id(d);
  check(spec.automountServiceAccountToken === false, `${w}: automountServiceAccountToken must be false (nothing here talks to the API)`);
  for (const c of spec.containers) {
    const where = `${w} container ${c.name}`;
    check(c.securityContext?.readOnlyRootFilesystem === true, `${where}: readOnlyRootFilesystem must be true`);
    for (const k of ["requests", "limits"]) {
      check(c.resources?.[k]?.cpu && c.resources?.[k]?.memory, `${where}: resources.${k} must set cpu and memory`);
    }
    check(/:[\w][\w.-]*$/.test(c.image) && !c.image.endsWith(":latest"), `${where}: image ${c.image} must carry a version tag`);
  }
  if (d.kind === "Job") {
    check(spec.restartPolicy === "Never", `${w}: restartPolicy Never (podFailurePolicy needs it)`);
    check((d.spec.podFailurePolicy?.rules ?? []).length > 0, `${w}: podFailurePolicy`);
    check(d.spec.activeDeadlineSeconds > 0 && d.spec.ttlSecondsAfterFinished > 0, `${w}: activeDeadlineSeconds and ttlSecondsAfterFinished`);
    for (const c of spec.containers) {
      check(c.terminationMessagePolicy === "FallbackToLogsOnError", `${w} container ${c.name}: terminationMessagePolicy FallbackToLogsOnError (the verdict, or the log's end)`);
      check(!c.terminationMessagePath || c.terminationMessagePath === "/dev/termination-log",
        `${w} container ${c.name}: terminationMessagePath must stay /dev/termination-log (the trainer's --termination_log default)`);
      if (c.resources?.limits?.["nvidia.com/gpu"]) {
        check(["cuda", "cublas"].includes(flag(c.args, "backend")), `${w} container ${c.name}: asks for a GPU but does not pass --backend cuda or cublas (it could pass on the CPU)`);
      }
    }
  }
}

// ---- the objects agree ----
const mountsOf = (spec, c) => (c.volumeMounts ?? []).map((m) => ({ m, v: (spec.volumes ?? []).find((v) => v.name === m.name) }));
const claimUsers = {};  // claim -> [{w, readOnly, container, mountPath}]
for (const { d, spec } of workloads) {
  for (const c of allContainers(spec)) {
    for (const { m, v } of mountsOf(spec, c)) {
      if (!check(v, `${id(d)} container ${c.name}: mounts ${m.name}, which is not a volume of the pod`)) continue;
      const claim = v.persistentVolumeClaim?.claimName;
      if (!claim) continue;
      check(claims[claim], `${id(d)}: volume ${v.name} uses claim ${claim}, which this kustomization does not create`);
      (claimUsers[claim] ??= []).push({ d, c, mountPath: m.mountPath, readOnly: !!(m.readOnly || v.persistentVolumeClaim.readOnly) });
    }
  }
}
for (const [claim, users] of Object.entries(claimUsers)) {
  const writers = users.filter((u) => u.d.kind === "Job" && !u.readOnly);
  const others = users.filter((u) => u.d.kind !== "Job");
  const rwo = (claims[claim]?.spec.accessModes ?? []).every((m) => m === "ReadWriteOnce" || m === "ReadWriteOncePod");
  if (writers.length) {
    for (const o of others) {
      check(o.readOnly, `${id(o.d)}: mounts claim ${claim}, which the Jobs write, read-write`);
      if (rwo && o.d.kind === "Deployment") {
        check(o.d.spec.replicas === 0, `${id(o.d)}: shares the ReadWriteOnce claim ${claim} with a Job, so it must start at 0 replicas (else it may hold the claim on another node and the Job's pod never starts)`);
      }
    }
  }
  // TensorBoard (a container with --logdir) must read where the training Jobs log (--log_dir).
  const rel = (u, p) => (p === u.mountPath || p.startsWith(u.mountPath.replace(/\/?$/, "/")) ? p.slice(u.mountPath.length).replace(/^\/?/, "/") : null);
  for (const tb of users.filter((u) => flag(u.c.args, "logdir") !== undefined)) {
    const tbDir = rel(tb, flag(tb.c.args, "logdir"));
    check(tbDir !== null, `${id(tb.d)}: --logdir ${flag(tb.c.args, "logdir")} is not on the claim ${claim} it mounts`);
    for (const job of writers.filter((u) => flag(u.c.args, "log_dir") !== undefined && !u.c.args.includes("--benchmark"))) {
      const logDir = rel(job, flag(job.c.args, "log_dir"));
      check(logDir !== null && tbDir !== null && (logDir + "/").startsWith(tbDir.replace(/\/?$/, "/")),
        `${id(tb.d)}: --logdir ${tbDir} on ${claim} does not cover ${id(job.d)}'s --log_dir ${logDir}`);
    }
  }
}
for (const svc of docs.filter((d) => d.kind === "Service")) {
  const sel = svc.spec.selector ?? {};
  const targets = workloads.filter((w) => Object.keys(sel).length && Object.entries(sel).every(([k, v]) => w.labels[k] === v));
  if (!check(targets.length > 0, `${id(svc)}: its selector matches no workload here`)) continue;
  for (const p of svc.spec.ports) {
    const t = p.targetPort ?? p.port;
    const ok = targets.some((w) => w.spec.containers.some((c) => (c.ports ?? []).some((cp) => cp.containerPort === t || cp.name === t)));
    check(ok, `${id(svc)}: port ${p.port} targets ${t}, which no selected container exposes`);
  }
}

// ---- what the overlay's name promises ----
const jobs = workloads.filter((w) => w.d.kind === "Job");
const tolerates = (spec, taint) => (spec.tolerations ?? []).some((t) =>
  (t.key === taint.key || (!t.key && t.operator === "Exists")) &&
  (t.operator === "Exists" || t.value === taint.value) && (!t.effect || t.effect === taint.effect));
check(jobs.length > 0 || !expects.length, "no Job rendered");
for (const { d, spec } of jobs) {
  const sel = spec.nodeSelector ?? {};
  check(tolerates(spec, { key: "nvidia.com/gpu", value: "present", effect: "NoSchedule" }), `${id(d)}: tolerates the nvidia.com/gpu:NoSchedule taint`);
  if (expects.includes("aks")) check(tolerates(spec, { key: "sku", value: "gpu", effect: "NoSchedule" }), `${id(d)}: aks: tolerates sku=gpu:NoSchedule`);
  if (expects.includes("gke")) check(/^nvidia-/.test(sel["cloud.google.com/gke-accelerator"] ?? ""), `${id(d)}: gke: nodeSelector cloud.google.com/gke-accelerator`);
  if (expects.includes("eks")) check(sel["kubernetes.io/arch"] === "amd64", `${id(d)}: eks: nodeSelector kubernetes.io/arch amd64 (the image is x86-64)`);
  if (expects.includes("plain")) {
    check(!tolerates(spec, { key: "sku", value: "gpu", effect: "NoSchedule" }) && Object.keys(sel).length === 0,
      `${id(d)}: plain: no cloud-specific tolerations or node selectors`);
  }
}
const onClaim = (w, name) => {
  const c = w.spec.containers[0];
  const p = flag(c.args, name);
  return p !== undefined && mountsOf(w.spec, c).some(({ m, v }) => v?.persistentVolumeClaim && !m.readOnly && p.startsWith(m.mountPath.replace(/\/?$/, "/")));
};
if (expects.includes("persistent")) {
  const train = jobs.filter((w) => !flag(w.spec.containers[0].args, "benchmark") && !w.spec.containers[0].args?.includes("--benchmark"));
  check(train.length > 0, "persistent: a training Job");
  for (const w of train) {
    check(onClaim(w, "log_dir"), `${id(w.d)}: persistent: --log_dir on a claim`);
    check(onClaim(w, "checkpoint_dir"), `${id(w.d)}: persistent: --checkpoint_dir on a claim`);
  }
}
if (expects.includes("persistent") || expects.includes("benchmark")) {
  check(docs.some((d) => d.kind === "Deployment" && d.spec.template.spec.containers.some((c) => flag(c.args, "logdir") !== undefined)) &&
    docs.some((d) => d.kind === "Service"), "persistent: a TensorBoard Deployment and its Service");
}
if (expects.includes("benchmark")) {
  const bench = jobs.filter((w) => w.spec.containers[0].args?.includes("--benchmark"));
  check(bench.length > 0, "benchmark: a benchmark Job");
  for (const w of bench) {
    check(onClaim(w, "benchmark_out"), `${id(w.d)}: benchmark: --benchmark_out on a claim`);
    check(onClaim(w, "result_file"), `${id(w.d)}: benchmark: --result_file (its verdict) on a claim`);
  }
}

console.log(`${checks - failures}/${checks} policy checks passed on ${docs.length} object(s)${expects.length ? ` (expected: ${expects.join(", ")})` : ""}`);
process.exit(failures ? 1 : 0);

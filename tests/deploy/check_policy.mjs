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
//   - a Job over several pods (--world_size > 1, or completionMode Indexed): an Indexed Job whose
//     completions and parallelism are --world_size, --backend cuda, all ranks succeeding and
//     retried together (no backoffLimitPerIndex or successPolicy, podReplacementPolicy Failed, a
//     backoffLimit of at least one failure per rank, the base's podFailurePolicy codes), a
//     subdomain naming a headless Service (clusterIP None, publishNotReadyAddresses) that selects
//     exactly this Job's pods (its job-name label) and exposes the rendezvous port, and a
//     --rendezvous of <job>-0.<subdomain>:PORT with PORT a named containerPort; --gpus within
//     the pod's nvidia.com/gpu, a deadline longer than --rendezvous_timeout; the ranks' shared
//     secret: --rendezvous_secret_file on a read-only Secret volume that provides that file; and
//     a NetworkPolicy that selects the Job's pods and admits to them, on every port (rendezvous
//     and NCCL), only the Job's own pods (no other pod, namespace or address block);
//   - --expect: what the overlay's name promises: aks (tolerates the sku=gpu:NoSchedule taint),
//     gke (selects cloud.google.com/gke-accelerator), eks (selects amd64 nodes), persistent
//     (the training Job's logs and checkpoints on a claim, TensorBoard serving it), benchmark (the
//     benchmark JSON and the run's result.json on a claim), plain (no cloud-specific scheduling),
//     multinode (a Job over several pods, as above, one rank per node), pool (scripts/check-pool.sh's
//     per-node Job: pinned by node affinity on the node's name, not nodeName, backoffLimit 0,
//     --gpus all), runtimeclass (runtimeClassName nvidia; without it, none). Every Job selects
//     kubernetes.io/arch amd64 nodes.
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

// The labels the Job controller puts on every pod of Job NAME, and on no other pod (its uid is
// unknown before the Job exists).
const jobNameLabels = ["batch.kubernetes.io/job-name", "job-name"];
const jobLabels = (name) => Object.fromEntries(jobNameLabels.map((k) => [k, name]));
function podSpecOf(d) {
  switch (d.kind) {
    case "Pod": return { spec: d.spec, labels: d.metadata?.labels ?? {} };
    // A Job's pods also carry the labels its controller adds (what a Service may select).
    case "Job": return { spec: d.spec.template.spec, labels: { ...jobLabels(d.metadata.name), ...(d.spec.template.metadata?.labels ?? {}) } };
    case "Deployment": case "StatefulSet": case "DaemonSet": case "ReplicaSet":
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

// ---- a Job over several pods (--world_size > 1, or an Indexed Job) ----
// The pods of an Indexed Job get their rank from JOB_COMPLETION_INDEX and the hostname
// <job>-<index>; with `subdomain` naming a headless Service, rank 0 is <job>-0.<service> inside the
// namespace, where the others find its --rendezvous. Every rank must run at once and succeed
// together: a rank's failure fails or retries the whole world.
const dnsLabel = (s) => typeof s === "string" && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(s) && s.length <= 63;
const multiNode = workloads.filter((w) => w.d.kind === "Job" &&
  (w.d.spec.completionMode === "Indexed" || w.spec.containers.some((c) => flag(c.args, "world_size") !== undefined)));
for (const { d, spec, labels } of multiNode) {
  const w = id(d), name = d.metadata.name;
  const c = spec.containers.find((k) => k.name === "mnist-train") ?? spec.containers[0];
  const where = `${w} (multi-node)`;
  const ws = Number(flag(c.args, "world_size") ?? "1");
  const completions = d.spec.completions, parallelism = d.spec.parallelism ?? 1;
  check(Number.isInteger(ws) && ws > 1, `${where}: --world_size ${flag(c.args, "world_size")} must be an integer above 1 (an Indexed Job of this trainer is a run over several pods)`);
  check(d.spec.completionMode === "Indexed", `${where}: completionMode must be Indexed (each pod's rank is JOB_COMPLETION_INDEX, which only an Indexed Job sets)`);
  check(completions === ws, `${where}: completions ${completions} must equal --world_size ${ws} (one pod per rank)`);
  check(parallelism === completions, `${where}: parallelism ${parallelism} must equal completions ${completions} (every rank must run at once: rank 0 waits for all of them)`);
  check(flag(c.args, "backend") === "cuda", `${where}: --backend must be cuda (the only data-parallel backend; cpu/cublas with --world_size > 1 exit 2)`);
  // All or nothing.
  check(d.spec.backoffLimitPerIndex === undefined && d.spec.maxFailedIndexes === undefined,
    `${where}: backoffLimitPerIndex/maxFailedIndexes retry one rank while the others go on or give up on it; every rank must restart together`);
  check(d.spec.successPolicy === undefined, `${where}: successPolicy would let the Job succeed before every rank did`);
  check(d.spec.podReplacementPolicy === "Failed", `${where}: podReplacementPolicy must be Failed (a replacement only once the failed pod is gone, never two pods with one rank's hostname)`);
  check((d.spec.backoffLimit ?? 6) >= ws, `${where}: backoffLimit ${d.spec.backoffLimit ?? 6} is below --world_size ${ws}: one failure of the world (every rank exits 3) would use it up`);
  const rules = d.spec.podFailurePolicy?.rules ?? [];
  const codesOf = (action) => new Set(rules.filter((r) => r.action === action && r.onExitCodes?.operator === "In").flatMap((r) => r.onExitCodes.values));
  const failJob = codesOf("FailJob"), count = codesOf("Count");
  check([2, 4, 5, 6, 7].every((x) => failJob.has(x)), `${where}: podFailurePolicy must fail the Job on exit 2, 4, 5, 6, 7 (a misconfigured world, a bad GPU: no retry can pass)`);
  check([3, 130, 143].every((x) => !failJob.has(x) && count.has(x)), `${where}: podFailurePolicy must count 3, 130, 143 towards backoffLimit (a peer or rank 0 unreachable, a stop: a retry may pass)`);
  check(rules.some((r) => r.action === "Ignore" && (r.onPodConditions ?? []).some((p) => p.type === "DisruptionTarget")),
    `${where}: podFailurePolicy must ignore DisruptionTarget (a preempted rank is not the run's fault)`);
  check(rules.every((r) => r.action !== "FailIndex"), `${where}: FailIndex gives up on one rank; the world needs every one`);
  // Names and the rendezvous.
  const sub = spec.subdomain;
  check(dnsLabel(sub), `${where}: the pod template needs a subdomain (the headless Service's name) for <job>-0.<service> to resolve; is ${sub ?? "unset"}`);
  check(dnsLabel(`${name}-${ws - 1}`), `${where}: the pods' hostnames (${name}-0 .. ${name}-${ws - 1}) must be DNS labels of at most 63 characters`);
  check(spec.hostname === undefined, `${where}: spec.hostname would override the Indexed Job's <job>-<index> hostnames`);
  const rdzv = flag(c.args, "rendezvous") ?? "";
  const m = rdzv.match(/^([^:\[\]]+):(\d+)$/);
  check(m, `${where}: --rendezvous ${rdzv || "(missing)"} must be HOST:PORT`);
  const host = m?.[1], port = m ? Number(m[2]) : undefined;
  check(host === `${name}-0.${sub}`, `${where}: --rendezvous host ${host} must be rank 0's name, ${name}-0.${sub} (<job name>-0.<subdomain>)`);
  const cport = (c.ports ?? []).find((p) => p.containerPort === port);
  check(cport && cport.name && (cport.protocol ?? "TCP") === "TCP", `${where}: --rendezvous port ${port} must be a named TCP containerPort of container ${c.name}`);
  const timeout = Number(flag(c.args, "rendezvous_timeout") ?? "300");
  check(!(d.spec.activeDeadlineSeconds <= timeout), `${where}: activeDeadlineSeconds ${d.spec.activeDeadlineSeconds} must exceed --rendezvous_timeout ${timeout} (else the deadline ends a waiting rank before it can report why)`);
  // Every pod gets the same GPUs; --gpus must fit them.
  const gpus = Number(c.resources?.limits?.["nvidia.com/gpu"] ?? 0), sel = flag(c.args, "gpus") ?? "all";
  check(gpus >= 1, `${where}: each pod needs nvidia.com/gpu (is ${gpus})`);
  const wanted = sel === "all" ? [] : sel.includes(",") ? sel.split(",").map(Number) : [...Array(Number(sel)).keys()];
  check(wanted.every((o) => Number.isInteger(o) && o < gpus), `${where}: --gpus ${sel} asks for GPUs beyond the pod's nvidia.com/gpu ${gpus}`);
  // The ranks' shared secret: a file on a read-only Secret volume.
  const secretFile = flag(c.args, "rendezvous_secret_file");
  if (check(secretFile, `${where}: must pass --rendezvous_secret_file (the ranks' shared secret; without it --world_size > 1 exits 2)`)) {
    const mount = mountsOf(spec, c).filter(({ m }) => secretFile.startsWith(m.mountPath.replace(/\/?$/, "/")))
      .sort((a, b) => b.m.mountPath.length - a.m.mountPath.length)[0];
    if (check(mount?.v?.secret, `${where}: --rendezvous_secret_file ${secretFile} is not on a Secret volume`)) {
      check(mount.m.readOnly === true, `${where}: the Secret volume ${mount.m.name} must be mounted readOnly`);
      check(typeof mount.v.secret.secretName === "string" && mount.v.secret.secretName.length > 0, `${where}: the Secret volume ${mount.m.name} names no secretName`);
      const file = secretFile.slice(mount.m.mountPath.replace(/\/?$/, "/").length);
      const items = mount.v.secret.items;
      check(!items || items.some((i) => i.path === file), `${where}: the Secret volume ${mount.m.name} provides no ${file} (its items: ${(items ?? []).map((i) => i.path).join(", ")})`);
    }
  }
  // Only the Job's pods reach its pods: the rendezvous port and NCCL's.
  const onlyJob = (sel) => !!sel && Object.keys(sel.matchExpressions ?? {}).length === 0 &&
    jobNameLabels.some((k) => sel.matchLabels?.[k] === name);
  const policies = docs.filter((p) => p.kind === "NetworkPolicy" &&
    Object.entries(p.spec?.podSelector?.matchLabels ?? {}).every(([k, v]) => labels[k] === v) &&
    !(p.spec?.podSelector?.matchExpressions ?? []).length && Object.keys(p.spec?.podSelector?.matchLabels ?? {}).length > 0);
  if (check(policies.length > 0, `${where}: no NetworkPolicy selects the Job's pods (its job-name label): anyone in the cluster could reach the rendezvous and NCCL`)) {
    for (const p of policies) {
      check(onlyJob(p.spec.podSelector), `${id(p)}: podSelector must select only ${w}'s pods (its job-name label, batch.kubernetes.io/job-name: ${name})`);
      check((p.spec.policyTypes ?? ["Ingress"]).includes("Ingress"), `${id(p)}: policyTypes must include Ingress`);
      for (const [i, r] of (p.spec.ingress ?? []).entries()) {
        const peers = r.from ?? [];
        check(peers.length > 0 && peers.every((f) => onlyJob(f.podSelector) && !f.namespaceSelector && !f.ipBlock),
          `${id(p)}: ingress rule ${i} admits pods other than ${w}'s (every from must be a podSelector on its job-name label, without namespaceSelector or ipBlock)`);
      }
    }
    check(policies.some((p) => (p.spec.ingress ?? []).some((r) => !r.ports && (r.from ?? []).some((f) => onlyJob(f.podSelector)))),
      `${where}: no NetworkPolicy admits the Job's pods to each other on every port (NCCL connects on ports it picks)`);
  }
  // One rank per node (the point of several pods): a required anti-affinity on the node's hostname
  // against the Job's own pods.
  const antiTerms = spec.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [];
  check(antiTerms.some((t) => t.topologyKey === "kubernetes.io/hostname" && !t.namespaceSelector &&
      !(t.labelSelector?.matchExpressions ?? []).length && onlyJob(t.labelSelector)),
    `${where}: one rank per node: needs a required podAntiAffinity on topologyKey kubernetes.io/hostname selecting the Job's pods (its job-name label)`);
  // The headless Service.
  const svc = docs.find((s) => s.kind === "Service" && s.metadata.name === sub);
  if (!check(svc, `${where}: no Service named ${sub} (the pod template's subdomain) in this kustomization`)) continue;
  const sel2 = svc.spec.selector ?? {};
  check(svc.spec.clusterIP === "None", `${id(svc)}: must be headless (clusterIP: None) for per-pod DNS names (is ${svc.spec.clusterIP ?? "unset: a virtual IP"})`);
  check(svc.spec.publishNotReadyAddresses === true, `${id(svc)}: publishNotReadyAddresses must be true (the ranks look each other up while starting)`);
  check(Object.keys(sel2).length > 0 && Object.entries(sel2).every(([k, v]) => labels[k] === v), `${id(svc)}: selector ${JSON.stringify(sel2)} must select ${w}'s pods`);
  check(jobNameLabels.some((k) => sel2[k] === name), `${id(svc)}: selector ${JSON.stringify(sel2)} must select only ${w}'s pods: select its job-name label (batch.kubernetes.io/job-name: ${name})`);
  const others = workloads.filter((o) => o.d !== d && Object.keys(sel2).length && Object.entries(sel2).every(([k, v]) => o.labels[k] === v));
  check(others.length === 0, `${id(svc)}: also selects ${others.map((o) => id(o.d)).join(", ")}`);
  check((svc.spec.ports ?? []).some((p) => p.port === port && (p.targetPort === undefined ? p.port === port : p.targetPort === port || p.targetPort === cport?.name)),
    `${id(svc)}: must expose the rendezvous port ${port} (targeting the container's port)`);
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
  check(sel["kubernetes.io/arch"] === "amd64", `${id(d)}: nodeSelector kubernetes.io/arch amd64 (the image is x86-64; Arm GPU nodes exist)`);
  if (expects.includes("aks")) check(tolerates(spec, { key: "sku", value: "gpu", effect: "NoSchedule" }), `${id(d)}: aks: tolerates sku=gpu:NoSchedule`);
  if (expects.includes("gke")) {
    const acc = sel["cloud.google.com/gke-accelerator"];
    check(typeof acc === "string" && /^nvidia-[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(acc) && acc.length <= 63,
      `${id(d)}: gke: nodeSelector cloud.google.com/gke-accelerator must be a GPU type like nvidia-l4 (is ${JSON.stringify(acc)})`);
  }
  if (expects.includes("runtimeclass")) check(spec.runtimeClassName === "nvidia", `${id(d)}: runtimeclass: runtimeClassName nvidia`);
  else check(spec.runtimeClassName === undefined, `${id(d)}: runtimeClassName only with the runtimeclass component (is ${spec.runtimeClassName})`);
  if (expects.includes("pool")) {
    // scripts/check-pool.sh's per-node Job: through the scheduler (no nodeName) onto one node by
    // name, every GPU there, the first failure its verdict.
    const terms = spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
    const f = terms.length === 1 && !(terms[0].matchExpressions ?? []).length ? terms[0].matchFields ?? [] : [];
    check(f.length === 1 && f[0].key === "metadata.name" && f[0].operator === "In" && f[0].values?.length === 1,
      `${id(d)}: pool: pinned by one required nodeAffinity term matching metadata.name to one node`);
    check(spec.nodeName === undefined, `${id(d)}: pool: no nodeName (it skips the scheduler's fit and taint checks)`);
    check(d.spec.backoffLimit === 0, `${id(d)}: pool: backoffLimit 0 (the first failure is the node's verdict)`);
    const c = spec.containers.find((k) => k.name === "mnist-train") ?? spec.containers[0];
    check(flag(c.args, "gpus") === "all", `${id(d)}: pool: --gpus all (every GPU of the node)`);
    check(Number.isInteger(Number(c.resources?.limits?.["nvidia.com/gpu"])) && Number(c.resources.limits["nvidia.com/gpu"]) >= 1,
      `${id(d)}: pool: nvidia.com/gpu limit`);
    check(d.spec.completions === undefined || d.spec.completions === 1, `${id(d)}: pool: one pod`);
  }
  if (expects.includes("eks")) check(sel["kubernetes.io/arch"] === "amd64", `${id(d)}: eks: nodeSelector kubernetes.io/arch amd64 (the image is x86-64)`);
  if (expects.includes("plain")) {
    check(!tolerates(spec, { key: "sku", value: "gpu", effect: "NoSchedule" }) && Object.keys(sel).every((k) => k === "kubernetes.io/arch"),
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

if (expects.includes("multinode")) {
  check(multiNode.length > 0, "multinode: an Indexed Job training over several pods (--world_size > 1)");
}

console.log(`${checks - failures}/${checks} policy checks passed on ${docs.length} object(s)${expects.length ? ` (expected: ${expects.join(", ")})` : ""}`);
process.exit(failures ? 1 : 0);

// What a Job's container would run, made runnable on this machine for job_contract.sh.
//
//   node job_spec.mjs MANIFEST --list
//       the names of the Jobs in MANIFEST (a YAML file, one or many documents), one per line
//   node job_spec.mjs MANIFEST --job NAME --trainer PATH --root DIR --uid UID
//       tab-separated lines describing Job NAME's container as its pod would start it:
//         arg <TAB> VALUE        each argument, in order, after Kubernetes' $(VAR) expansion, every
//                                path flag (given, or its default as --help prints it) made
//                                explicit, and every path mapped from its volume mount to
//                                DIR/<volume name>/... (so the run writes where the pod would)
//         path <TAB> FLAG <TAB> MAPPED <TAB> VOLUME KIND     for each output path flag in effect
//         codes <TAB> N N ...    the exit codes its podFailurePolicy names
//         gpus <TAB> N           its nvidia.com/gpu limit
//         termination <TAB> WRITTEN <TAB> READ <TAB> POLICY   where the trainer writes its verdict
//                                line, where Kubernetes reads the termination message, and the policy
//         problem <TAB> TEXT     something the pod would get wrong (e.g. an output on the read-only
//                                root filesystem, a downward-API label the Job controller never sets)
//         secret <TAB> MAPPED    --rendezvous_secret_file's file (mapped), which the pod finds on
//                                its Secret volume: the test writes one there, as the operator
//                                creates the Secret
//         indexed <TAB> N        (Indexed Jobs) its completions: pods 0..N-1, each started with
//                                JOB_COMPLETION_INDEX set to its index (--index, default 0, here)
//   UID stands for the Job's uid (each Job object gets a new one; its retried pods share it).
import fs from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import yaml from "js-yaml";

const argv = process.argv.slice(2);
const manifest = argv[0];
const opt = (name) => {
  const i = argv.indexOf(`--${name}`);
  return i > 0 ? argv[i + 1] : undefined;
};
const docs = yaml.loadAll(fs.readFileSync(manifest, "utf8")).filter(Boolean);
const jobs = docs.filter((d) => d.apiVersion === "batch/v1" && d.kind === "Job");
if (argv.includes("--list")) {
  for (const j of jobs) console.log(j.metadata.name);
  process.exit(jobs.length ? 0 : 1);
}

const name = opt("job"), trainer = opt("trainer"), root = opt("root"), uid = opt("uid"), index = opt("index") ?? "0";
if (!name || !trainer || !root || !uid) {
  console.error("usage: job_spec.mjs MANIFEST --job NAME --trainer PATH --root DIR --uid UID");
  process.exit(2);
}
const job = jobs.find((j) => j.metadata.name === name);
if (!job) {
  console.error(`no Job named ${name} in ${manifest}`);
  process.exit(2);
}
const out = [];
const problem = (text) => out.push(`problem\t${text}`);
const pod = job.spec.template.spec;
const container = pod.containers.find((c) => c.name === "mnist-train") ?? pod.containers[0];

// The labels the Job controller puts on its pods (what a downward-API fieldRef can read).
const podLabels = {
  "batch.kubernetes.io/controller-uid": uid, "controller-uid": uid,
  "batch.kubernetes.io/job-name": name, "job-name": name,
  ...(job.spec.template.metadata?.labels ?? {}),
};
const indexed = job.spec.completionMode === "Indexed";
if (indexed) podLabels["batch.kubernetes.io/job-completion-index"] = index;
// Kubernetes' dependent environment variables: $(VAR) is replaced by an earlier variable's value,
// $$ escapes, anything else stays as written.
const env = {};
const expand = (s) => String(s).replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g,
  (m, v) => (m === "$$" ? "$" : v in env ? env[v] : m));
for (const e of container.env ?? []) {
  if (e.value !== undefined) env[e.name] = expand(e.value);
  else if (e.valueFrom?.fieldRef) {
    const f = e.valueFrom.fieldRef.fieldPath;
    const label = f.match(/^metadata\.labels\['([^']+)'\]$/);
    if (label) {
      if (!(label[1] in podLabels)) problem(`env ${e.name}: the pod has no label ${label[1]} (it would be empty)`);
      env[e.name] = podLabels[label[1]] ?? "";
    } else if (f === "metadata.name") env[e.name] = `${name}-pod`;
    else if (f === "metadata.namespace") env[e.name] = "default";
    else if (f === "spec.nodeName") env[e.name] = "gpu-node-1";
    else problem(`env ${e.name}: fieldRef ${f} is not modelled by this test`);
  } else problem(`env ${e.name}: only values and fieldRefs are modelled by this test`);
}

// The Job controller appends JOB_COMPLETION_INDEX to an Indexed Job's containers' env (after
// theirs, so only args can refer to it).
if (indexed) env.JOB_COMPLETION_INDEX = index;

// Volumes as the container sees them.
const volumes = Object.fromEntries((pod.volumes ?? []).map((v) => [v.name, v]));
const kind = (v) => Object.keys(v).find((k) => k !== "name");
const mounts = (container.volumeMounts ?? []).map((m) => ({ ...m, volume: volumes[m.name] }))
  .sort((a, b) => b.mountPath.length - a.mountPath.length);
for (const m of mounts) if (!m.volume) problem(`volumeMount ${m.mountPath}: no volume named ${m.name}`);
const mountOf = (p) => mounts.find((m) => p === m.mountPath || p.startsWith(m.mountPath.replace(/\/?$/, "/")));
// A path on no volume is on the container's own (read-only) filesystem: reported as a problem
// below, and mapped under ROOT/rootfs so that the test's runs never write outside ROOT.
const mapPath = (p) => {
  const m = mountOf(p);
  return m ? path.join(root, m.name, path.relative(m.mountPath, p)) : path.join(root, "rootfs", p);
};

// Output paths: the given value or the trainer's default (from --help).
const help = execFileSync(trainer, ["--help"], { encoding: "utf8" });
const defaults = Object.fromEntries([...help.matchAll(/--(\w+) [A-Z][A-Za-z|]*=(\S+)/g)].map((m) => [m[1], m[2]]));
const pathFlags = ["data_dir", "log_dir", "checkpoint_dir", "benchmark_out", "result_file"];

const args = (container.args ?? []).map(expand);
if (container.command) problem("the Job overrides the image's ENTRYPOINT (command:)");
const given = new Map();
for (let i = 0; i < args.length; i++) {
  const m = args[i].match(/^--(\w+)(?:=(.*))?$/);
  if (m && pathFlags.includes(m[1])) given.set(m[1], m[2] !== undefined ? { i, eq: true } : { i: i + 1, eq: false });
}
const mapped = args.map((a) => (a.startsWith("/") ? mapPath(a) : a));
for (const flag of pathFlags) {
  let value;
  if (given.has(flag)) {
    const { i, eq } = given.get(flag);
    value = eq ? args[i].slice(args[i].indexOf("=") + 1) : args[i];
    if (eq) mapped[i] = `--${flag}=${mapPath(value)}`;
  } else if (defaults[flag]) {
    value = defaults[flag];
    mapped.push(`--${flag}`, mapPath(value));
  } else continue;
  if (value === "") continue;  // an output turned off
  const m = mountOf(value);
  if (!m) problem(`--${flag} ${value} is on the container's root filesystem (read-only, or lost with the container): on no volume`);
  else if (m.readOnly) problem(`--${flag} ${value} is on the read-only mount ${m.mountPath}`);
  out.push(`path\t${flag}\t${mapPath(value)}\t${m?.volume ? kind(m.volume) : "rootfs"}`);
}
for (const a of mapped) {
  if (a.includes("\n") || a.includes("\t")) problem(`argument with a newline or tab: ${JSON.stringify(a)}`);
  if (/\$\([A-Za-z_]/.test(a)) problem(`argument ${a} refers to a variable the container does not define`);
}

// The ranks' shared secret: a file the pod reads from a read-only Secret volume.
const sf = args.findIndex((a) => a === "--rendezvous_secret_file" || a.startsWith("--rendezvous_secret_file="));
if (sf >= 0) {
  const file = args[sf].includes("=") ? args[sf].split("=").slice(1).join("=") : args[sf + 1];
  const m = mountOf(file);
  if (!m?.volume?.secret) problem(`--rendezvous_secret_file ${file} is on no Secret volume`);
  else if (!m.readOnly) problem(`--rendezvous_secret_file ${file}: its Secret volume is mounted read-write`);
  out.push(`secret\t${mapPath(file)}`);
}

// The verdict line: where the trainer writes it (--termination_log, or its default) and where
// Kubernetes reads the termination message from (terminationMessagePath, default /dev/termination-log).
const tl = args.findIndex((a) => a === "--termination_log" || a.startsWith("--termination_log="));
const written = tl < 0 ? defaults.termination_log ?? "" : args[tl].includes("=") ? args[tl].split("=").slice(1).join("=") : args[tl + 1];
out.push(`termination\t${written}\t${container.terminationMessagePath ?? "/dev/termination-log"}\t${container.terminationMessagePolicy ?? "File"}`);

const codes = new Set();
for (const rule of job.spec.podFailurePolicy?.rules ?? []) {
  for (const v of rule.onExitCodes?.values ?? []) codes.add(v);
}
console.log([
  ...mapped.map((a) => `arg\t${a}`),
  ...out,
  `codes\t${[...codes].sort((a, b) => a - b).join(" ")}`,
  `gpus\t${container.resources?.limits?.["nvidia.com/gpu"] ?? 0}`,
  ...(indexed ? [`indexed\t${job.spec.completions ?? ""}`] : []),
].join("\n"));

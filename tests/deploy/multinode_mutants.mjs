// Broken copies of a rendered multi-node kustomization (an Indexed Job, its headless Service and
// its NetworkPolicy), one mistake each, for multinode_mutants.sh to prove that the checks catch them:
//   node multinode_mutants.mjs --list
//       one line per mutant: NAME <TAB> CHECKER <TAB> TEXT <TAB> WHAT, where CHECKER (policy:
//       check_policy.mjs, contract: job_contract.sh) must fail on it with a FAIL line containing TEXT
//   node multinode_mutants.mjs RENDERED NAME OUT
//       writes RENDERED with mutant NAME's mistake to OUT
import fs from "node:fs";
import yaml from "js-yaml";

// The Job's container args: set FLAG to VALUE (replacing the Job's), or remove it (VALUE undefined).
function setArg(c, flag, value) {
  const i = c.args.indexOf(`--${flag}`);
  if (value === undefined) {
    if (i >= 0) c.args.splice(i, 2);
  } else if (i >= 0) c.args[i + 1] = value;
  else c.args.push(`--${flag}`, value);
}
const arg = (c, flag) => c.args[c.args.indexOf(`--${flag}`) + 1];
const swapPort = (c, port) => setArg(c, "rendezvous", arg(c, "rendezvous").replace(/:\d+$/, `:${port}`));

const secretVolume = (j, name) => (j.spec.template.spec.volumes ?? []).find((v) => v.name === name && v.secret);
const policyOf = (docs) => docs.find((d) => d.kind === "NetworkPolicy");

// name: [checker, text its FAIL line contains, what the mistake is, mutation(job, container, service)]
const mutants = {
  "no-anti-affinity": ["policy", "one rank per node", "no pod anti-affinity: two ranks may share a node",
    (j) => { delete j.spec.template.spec.affinity; }],
  "preferred-anti-affinity": ["policy", "one rank per node", "anti-affinity only preferred: the scheduler may still pair ranks",
    (j) => { const a = j.spec.template.spec.affinity.podAntiAffinity;
             a.preferredDuringSchedulingIgnoredDuringExecution = a.requiredDuringSchedulingIgnoredDuringExecution
               .map((t) => ({ weight: 100, podAffinityTerm: t }));
             delete a.requiredDuringSchedulingIgnoredDuringExecution; }],
  "zone-anti-affinity": ["policy", "one rank per node", "anti-affinity per zone, not per node",
    (j) => { j.spec.template.spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey = "topology.kubernetes.io/zone"; }],
  "subdomain": ["policy", "no Service named", "the pod template's subdomain is not the Service's name",
    (j) => { j.spec.template.spec.subdomain = "mnist-train-elsewhere"; }],
  "no-subdomain": ["policy", "needs a subdomain", "no subdomain: the pods get no DNS names",
    (j) => { delete j.spec.template.spec.subdomain; }],
  "service-name": ["policy", "no Service named", "the Service renamed, the subdomain not",
    (j, c, s) => { s.metadata.name = `${s.metadata.name}-svc`; }],
  "completions": ["policy", "completions 3 must equal --world_size 2", "completions (and parallelism) 3, --world_size 2",
    (j) => { j.spec.completions = 3; j.spec.parallelism = 3; }],
  "world-size": ["policy", "must equal --world_size 3", "--world_size 3, completions 2",
    (j, c) => setArg(c, "world_size", "3")],
  "parallelism": ["policy", "parallelism 1 must equal completions 2", "parallelism 1: the ranks would run one after the other",
    (j) => { j.spec.parallelism = 1; }],
  "not-indexed": ["policy", "completionMode must be Indexed", "a NonIndexed Job: no JOB_COMPLETION_INDEX",
    (j) => { delete j.spec.completionMode; }],
  "not-headless": ["policy", "must be headless", "a Service with a virtual IP",
    (j, c, s) => { delete s.spec.clusterIP; }],
  "not-published": ["policy", "publishNotReadyAddresses must be true", "DNS only once pods are Ready",
    (j, c, s) => { delete s.spec.publishNotReadyAddresses; }],
  "wide-selector": ["policy", "must select only", "the Service selects every mnist-train pod (the single-pod Job's too)",
    (j, c, s) => { s.spec.selector = { "app.kubernetes.io/name": "mnist-train" }; }],
  "foreign-selector": ["policy", "must select Job/", "the Service selects another Job's pods",
    (j, c, s) => { s.spec.selector = { "batch.kubernetes.io/job-name": "mnist-train" }; }],
  "rendezvous-host": ["policy", "must be rank 0's name", "--rendezvous names rank 1's pod",
    (j, c) => setArg(c, "rendezvous", arg(c, "rendezvous").replace(`${j.metadata.name}-0.`, `${j.metadata.name}-1.`))],
  "rendezvous-port": ["policy", "must be a named TCP containerPort", "--rendezvous on a port the container does not declare",
    (j, c) => swapPort(c, 29401)],
  "service-port": ["policy", "must expose the rendezvous port", "the Service exposes another port",
    (j, c, s) => { s.spec.ports = [{ name: "rendezvous", port: 29401, targetPort: "rendezvous" }]; }],
  "backend": ["policy", "--backend must be cuda", "--backend cublas",
    (j, c) => setArg(c, "backend", "cublas")],
  "per-index": ["policy", "backoffLimitPerIndex", "backoffLimitPerIndex: a rank retried alone",
    (j) => { j.spec.backoffLimitPerIndex = 2; }],
  "success-policy": ["policy", "successPolicy", "successPolicy: rank 0 alone completes the Job",
    (j) => { j.spec.successPolicy = { rules: [{ succeededIndexes: "0" }] }; }],
  "replacement": ["policy", "podReplacementPolicy must be Failed", "podReplacementPolicy TerminatingOrFailed",
    (j) => { j.spec.podReplacementPolicy = "TerminatingOrFailed"; }],
  "backoff": ["policy", "backoffLimit 1 is below", "backoffLimit 1 with 2 ranks",
    (j) => { j.spec.backoffLimit = 1; }],
  "fail-on-3": ["policy", "must count 3, 130, 143", "exit 3 (a peer unreachable) fails the Job",
    (j) => {
      for (const r of j.spec.podFailurePolicy.rules) {
        if (r.action === "FailJob" && r.onExitCodes) r.onExitCodes.values.push(3);
        if (r.action === "Count" && r.onExitCodes) r.onExitCodes.values = r.onExitCodes.values.filter((v) => v !== 3);
      }
    }],
  "gpus": ["policy", "asks for GPUs beyond", "--gpus 2 in pods with nvidia.com/gpu 1",
    (j, c) => setArg(c, "gpus", "2")],
  "deadline": ["policy", "must exceed --rendezvous_timeout", "activeDeadlineSeconds no longer than the rendezvous timeout",
    (j, c) => { j.spec.activeDeadlineSeconds = Number(arg(c, "rendezvous_timeout") ?? 300); }],
  "hostname": ["policy", "spec.hostname would override", "a fixed hostname for every rank",
    (j) => { j.spec.template.spec.hostname = "trainer"; }],
  // The ranks' shared secret and the NetworkPolicy.
  "no-secret-flag": ["policy", "must pass --rendezvous_secret_file", "no --rendezvous_secret_file: strangers could join",
    (j, c) => setArg(c, "rendezvous_secret_file", undefined)],
  "secret-off-volume": ["policy", "is not on a Secret volume", "--rendezvous_secret_file on the image's filesystem, not the Secret",
    (j, c) => setArg(c, "rendezvous_secret_file", "/etc/rendezvous-secret")],
  "secret-writable": ["policy", "must be mounted readOnly", "the Secret volume mounted read-write",
    (j, c) => { for (const m of c.volumeMounts) if (secretVolume(j, m.name)) delete m.readOnly; }],
  "secret-key": ["policy", "provides no secret", "the Secret volume maps its key to another file name",
    (j) => { for (const v of j.spec.template.spec.volumes) if (v.secret) v.secret.items = [{ key: "secret", path: "key" }]; }],
  "no-network-policy": ["policy", "no NetworkPolicy selects the Job's pods", "no NetworkPolicy: anyone in the cluster reaches the rendezvous",
    (j, c, s, docs) => { docs.splice(docs.findIndex((d) => d.kind === "NetworkPolicy"), 1); }],
  "policy-selects-others": ["policy", "no NetworkPolicy selects the Job's pods", "the NetworkPolicy selects another Job's pods",
    (j, c, s, docs) => { policyOf(docs).spec.podSelector = { matchLabels: { "batch.kubernetes.io/job-name": "mnist-train" } }; }],
  "policy-open": ["policy", "admits pods other than", "the NetworkPolicy admits every pod of the namespace",
    (j, c, s, docs) => { policyOf(docs).spec.ingress.push({ from: [{ podSelector: {} }] }); }],
  "policy-namespaces": ["policy", "admits pods other than", "the NetworkPolicy admits the Job's label from every namespace",
    (j, c, s, docs) => { policyOf(docs).spec.ingress[0].from[0].namespaceSelector = {}; }],
  "policy-anyone": ["policy", "admits pods other than", "an ingress rule without from: anyone",
    (j, c, s, docs) => { policyOf(docs).spec.ingress.push({ ports: [{ port: 29400 }] }); }],
  "policy-blocks-nccl": ["policy", "on every port", "the Job's pods admitted only to the rendezvous port: NCCL cannot connect",
    (j, c, s, docs) => { policyOf(docs).spec.ingress[0].ports = [{ port: 29400, protocol: "TCP" }]; }],
  // What only the binary can tell.
  "contract-no-secret": ["contract", "args are rejected", "--world_size 2 without --rendezvous_secret_file",
    (j, c) => setArg(c, "rendezvous_secret_file", undefined)],
  "contract-not-indexed": ["contract", "args are rejected", "a NonIndexed Job: its pods have no JOB_COMPLETION_INDEX",
    (j) => { delete j.spec.completionMode; }],
  "contract-world-size": ["contract", "JOB_COMPLETION_INDEX 2 exited 0", "--world_size 3, completions 2: a third rank never comes",
    (j, c) => setArg(c, "world_size", "3")],
  "contract-completions": ["contract", "pod 2 (JOB_COMPLETION_INDEX=2) exited 2", "completions 3, --world_size 2: pod 2 has no rank",
    (j) => { j.spec.completions = 3; j.spec.parallelism = 3; }],
  "contract-no-port": ["contract", "args are rejected", "--rendezvous without a port",
    (j, c) => setArg(c, "rendezvous", arg(c, "rendezvous").replace(/:\d+$/, ""))],
  "contract-no-rendezvous": ["contract", "args are rejected", "--world_size 2 without --rendezvous",
    (j, c) => setArg(c, "rendezvous", undefined)],
};

const argv = process.argv.slice(2);
if (argv[0] === "--list") {
  for (const [name, [checker, text, what]] of Object.entries(mutants)) console.log([name, checker, text, what].join("\t"));
  process.exit(0);
}
const [input, name, output] = argv;
if (!mutants[name]) {
  console.error(`no mutant ${name}`);
  process.exit(2);
}
const docs = yaml.loadAll(fs.readFileSync(input, "utf8")).filter(Boolean);
const job = docs.find((d) => d.kind === "Job" && d.spec.completionMode === "Indexed");
if (!job) {
  console.error(`${input}: no Indexed Job`);
  process.exit(2);
}
const container = job.spec.template.spec.containers.find((c) => c.name === "mnist-train") ?? job.spec.template.spec.containers[0];
const service = docs.find((d) => d.kind === "Service" && d.metadata.name === job.spec.template.spec.subdomain);
if (!service) {
  console.error(`${input}: no Service named as the Job's subdomain`);
  process.exit(2);
}
mutants[name][3](job, container, service, docs);
fs.writeFileSync(output, docs.map((d) => yaml.dump(d)).join("---\n"));

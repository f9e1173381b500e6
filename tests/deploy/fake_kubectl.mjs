#!/usr/bin/env node
// A stand-in for kubectl, for check_pool.sh's runs of scripts/check-pool.sh (KUBECTL points here):
// no cluster runs here, so its answers are hand-written in the shape of the API's answers. It
// records every command it is given and answers from a scenario file:
//   FAKE_KUBECTL_SCENARIO  JSON: {
//       "nodes": NodeList or a fixture file's name,   the answer to `get nodes -o json`
//       "pods": {NODE: [STATUS, ...]},  each node's pod, one status per `get pods` poll (the last one
//                                       repeats; a fixture file's name for any of them; null: no pod yet)
//       "jobs": {NODE: [STATUS, ...]},  the same for the node's Job (default: {"active": 1})
//       "fail": {"VERB RESOURCE": "TEXT"}  that command fails: TEXT on stderr, exit 1
//       "kustomize_fails_from": N  the Nth `kustomize` call (from 1) and every later one fail
//     }
//   --request-timeout=DURATION (or --request-timeout DURATION) is accepted as kubectl accepts it
//   (a number with an optional s, m or h); a malformed value fails, as kubectl refuses it.
//   FAKE_KUBECTL_STATE     a folder: `calls` (one JSON array of arguments per command) and
//                          created/N.yaml (each manifest given to `create -f`)
//   REAL_KUBECTL           the real kubectl, for `kustomize` (rendering is local, not an API call)
// `get jobs` and `get pods` list the Jobs created so far (only those the -l selector matches), each
// with its node's scenario status and the labels the Job controller adds, so that the answers
// carry the names the script chose.
import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import yaml from "js-yaml";

const args = process.argv.slice(2);
const state = process.env.FAKE_KUBECTL_STATE;
const here = path.dirname(new URL(import.meta.url).pathname);
const fixtures = path.join(here, "pool_fixtures");
fs.mkdirSync(path.join(state, "created"), { recursive: true });
fs.appendFileSync(path.join(state, "calls"), JSON.stringify(args) + "\n");

const scenario = JSON.parse(fs.readFileSync(process.env.FAKE_KUBECTL_SCENARIO, "utf8"));
const load = (v) => (typeof v === "string" ? JSON.parse(fs.readFileSync(path.join(fixtures, v), "utf8")) : v);
const opt = (...names) => {
  for (let i = 0; i < args.length; i++) {
    for (const n of names) {
      if (args[i] === n) return args[i + 1];
      if (args[i].startsWith(`${n}=`)) return args[i].slice(n.length + 1);
    }
  }
  return undefined;
};
const positional = args.filter((a, i) => !a.startsWith("-") &&
  !["-l", "-o", "-f", "-n", "--namespace", "--selector", "--request-timeout"].includes(args[i - 1]));
const [verb, resource] = positional;
const requestTimeout = opt("--request-timeout");
if (requestTimeout !== undefined && !/^[0-9]+(s|m|h)?$/.test(requestTimeout)) {
  process.stderr.write(`error: invalid argument "${requestTimeout}" for "--request-timeout" flag\n`);
  process.exit(1);
}
if (verb === "kustomize" && scenario.kustomize_fails_from !== undefined) {
  const renders = fs.readFileSync(path.join(state, "calls"), "utf8").trim().split("\n")
    .filter((l) => JSON.parse(l).includes("kustomize")).length;
  if (renders >= scenario.kustomize_fails_from) {
    process.stderr.write("error: accumulating resources: fake kubectl: this render fails\n");
    process.exit(1);
  }
}
const failure = scenario.fail?.[`${verb} ${resource ?? ""}`.trim()];
if (failure) {
  process.stderr.write(`${failure}\n`);
  process.exit(1);
}

// The Jobs created so far, as the API would store them.
const created = () => fs.readdirSync(path.join(state, "created")).sort().flatMap((f) =>
  yaml.loadAll(fs.readFileSync(path.join(state, "created", f), "utf8")).filter(Boolean));
// A selector of k=v pairs, as the script gives it.
const matches = (labels) => (opt("-l", "--selector") ?? "").split(",").filter(Boolean).every((kv) => {
  const [k, v] = kv.split("=");
  return labels?.[k] === v;
});
// The poll-th recorded status of this node's pod or Job (the last one repeats).
const polls = (what) => fs.readFileSync(path.join(state, "calls"), "utf8").trim().split("\n")
  .filter((l) => { const a = JSON.parse(l); return a.includes("get") && a.includes(what); }).length - 1;
const recorded = (table, node, what) => {
  const list = table?.[node];
  if (list === undefined) return undefined;
  const seq = Array.isArray(list) ? list : [list];
  const v = seq[Math.min(polls(what), seq.length - 1)];
  return v === null ? null : load(v);
};
const nodeOf = (job) => job.metadata?.annotations?.["mnist-train/node"];
const list = (items) => ({ apiVersion: "v1", kind: "List", metadata: { resourceVersion: "" }, items });

switch (verb) {
  case "kustomize": {
    const r = spawnSync(process.env.REAL_KUBECTL, args, { stdio: "inherit" });
    process.exit(r.status ?? 1);
  }
  case "get": {
    if (resource === "nodes") {
      // The API server applies -l; a recorded answer without items is replayed as it is.
      const nodes = load(scenario.nodes);
      if (Array.isArray(nodes.items)) nodes.items = nodes.items.filter((n) => matches(n.metadata?.labels));
      process.stdout.write(JSON.stringify(nodes));
    } else if (resource === "jobs") {
      const items = created().filter((j) => matches(j.metadata.labels)).map((j) => {
        const status = recorded(scenario.jobs, nodeOf(j), "jobs");
        return { ...j, metadata: { ...j.metadata, uid: `uid-${j.metadata.name}` }, status: status ?? { active: 1 } };
      });
      process.stdout.write(JSON.stringify(list(items)));
    } else if (resource === "pods") {
      const items = created().filter((j) => matches(j.spec.template.metadata?.labels)).flatMap((j) => {
        const status = recorded(scenario.pods, nodeOf(j), "pods");
        if (!status) return [];
        const name = j.metadata.name;
        return [{
          apiVersion: "v1", kind: "Pod",
          metadata: { name: `${name}-x7k2q`, creationTimestamp: "2026-12-04T01:00:00Z",
                      labels: { ...j.spec.template.metadata.labels, "batch.kubernetes.io/job-name": name, "job-name": name } },
          spec: { ...j.spec.template.spec, ...(status.phase === "Pending" && !status.containerStatuses ? {} : { nodeName: nodeOf(j) }) },
          status,
        }];
      });
      process.stdout.write(JSON.stringify(list(items)));
    } else {
      process.stderr.write(`fake kubectl: no answer for get ${resource}\n`);
      process.exit(1);
    }
    break;
  }
  case "create": {
    const file = opt("-f", "--filename");
    const n = fs.readdirSync(path.join(state, "created")).length;
    fs.copyFileSync(file === "-" ? "/dev/stdin" : file, path.join(state, "created", `${String(n).padStart(3, "0")}.yaml`));
    for (const d of created().slice(-1)) console.log(`job.batch/${d.metadata.name} created`);
    break;
  }
  case "delete":
    console.log(`deleted ${resource} matching ${opt("-l", "--selector")}`);
    break;
  default:
    process.stderr.write(`fake kubectl: no answer for ${args.join(" ")}\n`);
    process.exit(1);
}

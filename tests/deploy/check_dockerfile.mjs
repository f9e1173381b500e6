// The static checks a reviewer would make of the images, since no Docker engine runs in CI.
// node check_dockerfile.mjs Dockerfile.gpu .dockerignore JOB_MANIFEST — the trainer's images:
//   built on a CUDA 13 Ubuntu 24.04 devel image with docs/BUILDING.md's CMake presets, CUDA
//   architectures as a build argument covering 90; the images FROM scratch holding the layers
//   scripts/build-image.sh lays out (--stage-only: a and b in the default target, the node check;
//   c added in the `baseline` target) with the same user, environment, working folder and
//   entrypoint as that script's daemon-less images (the script beside the Dockerfile); a numeric
//   non-root user that is the one the Job runs as, the trainer as ENTRYPOINT (exec form), the
//   optional baked dataset, and a .dockerignore that keeps builds and data out of the context.
// node check_dockerfile.mjs --tensorboard Dockerfile.tensorboard TENSORBOARD_MANIFEST — the
//   TensorBoard image: a pinned Python base, the tensorboard pip package at an exact version that
//   is the Deployment's image tag, a numeric non-root USER that the Deployment runs as, tensorboard
//   as ENTRYPOINT (exec form), and the port the Deployment and its Service use.
import fs from "node:fs";
import path from "node:path";
import yaml from "js-yaml";

const argv = process.argv.slice(2);
const tensorboard = argv[0] === "--tensorboard";
const [dockerfile, second, third] = tensorboard ? argv.slice(1) : argv;
const manifest = tensorboard ? second : third;
const text = fs.readFileSync(dockerfile, "utf8");
// Join continuation lines, drop comments and heredoc-free blank lines.
const lines = text.replace(/\\\n/g, " ").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
const stages = [];
for (const line of lines) {
  const m = line.match(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i);
  if (m) stages.push({ image: m[1], name: m[2], lines: [] });
  else if (stages.length) stages.at(-1).lines.push(line);
}
// Build arguments with their defaults (a later bare `ARG NAME` inside a stage keeps the default).
const args = Object.fromEntries(lines.map((l) => l.match(/^ARG\s+(\w+)="?([^"]*)"?/)).filter(Boolean).map((m) => [m[1], m[2]]));
for (const m of lines.map((l) => l.match(/^ARG\s+(\w+)\s*$/)).filter(Boolean)) args[m[1]] ??= "";
const expand = (s) => s.replace(/\$\{(\w+)\}/g, (_, k) => args[k] ?? "");
const final = stages.at(-1);
// A stage and the earlier stages it is built FROM (by name), base first: what its image holds.
const chainOf = (stage) => {
  const parent = stage && stages.slice(0, stages.indexOf(stage)).find((s) => s.name && s.name === stage.image);
  return stage ? [...(parent ? chainOf(parent) : []), stage] : [];
};
const finalLines = tensorboard ? final?.lines ?? [] : chainOf(final).flatMap((s) => s.lines);
const finalUser = finalLines.filter((l) => /^USER\s/i.test(l)).at(-1)?.split(/\s+/)[1] ?? "";
const numericNonRoot = /^\d+(:\d+)?$/.test(finalUser) && !/^0(:|$)/.test(finalUser);
// The pod template of the first workload in MANIFEST, and its main container.
function podOf(manifest, kind) {
  const doc = yaml.loadAll(fs.readFileSync(manifest, "utf8")).find((d) => d?.kind === kind);
  const spec = doc?.spec?.template?.spec;
  return { spec, c: spec?.containers?.[0] };
}
const runsAs = ({ spec, c }) => `${c?.securityContext?.runAsUser ?? spec?.securityContext?.runAsUser}`;

if (tensorboard) {
  const pod = podOf(manifest, "Deployment");
  const svc = yaml.loadAll(fs.readFileSync(manifest, "utf8")).find((d) => d?.kind === "Service");
  const version = args.TENSORBOARD_VERSION ?? "";
  const port = final?.lines.find((l) => /^EXPOSE\s/i.test(l))?.split(/\s+/)[1];
  const cmd = JSON.parse(final?.lines.find((l) => /^CMD\s/i.test(l))?.replace(/^CMD\s+/i, "") ?? "[]");
  const tbChecks = [
    ["one stage on a Python slim image pinned to a minor version (no :latest)",
      stages.length === 1 && /^python:3\.\d+-slim(-\w+)?$/.test(expand(stages[0].image))],
    ["installs the tensorboard pip package at an exact version (TENSORBOARD_VERSION)",
      /^\d+\.\d+\.\d+$/.test(version) && final.lines.some((l) => /pip install "?tensorboard==\$\{TENSORBOARD_VERSION\}"?/.test(l))],
    ["the Deployment's image tag is that tensorboard version", pod.c?.image?.endsWith(`:${version}`)],
    ["runs as a numeric non-root user, the one the Deployment runs as",
      numericNonRoot && finalUser.split(":")[0] === runsAs(pod)],
    ["ENTRYPOINT is tensorboard, exec form", final.lines.some((l) => /^ENTRYPOINT\s+\[\s*"tensorboard"\s*\]$/.test(l))],
    ["EXPOSEs the Deployment's containerPort, which the Service targets",
      !!port && (pod.c?.ports ?? []).some((p) => `${p.containerPort}` === port) &&
        (svc?.spec?.ports ?? []).some((p) => `${p.port}` === port)],
    ["CMD's default --logdir is the one the Deployment passes",
      cmd[cmd.indexOf("--logdir") + 1] === pod.c?.args?.[pod.c.args.indexOf("--logdir") + 1]],
  ];
  let bad = 0;
  for (const [what, ok] of tbChecks) {
    console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
    if (!ok) bad++;
  }
  process.exit(bad ? 1 : 0);
}
const dockerignore = second;
// What scripts/build-image.sh gives its images (umoci config flags), to compare with the Dockerfile's.
const script = fs.readFileSync(path.join(path.dirname(dockerfile), "scripts", "build-image.sh"), "utf8");
const flag = (name) => [...script.matchAll(new RegExp(`--config\\.${name} (\\S+)`, "g"))].map((m) => m[1]);
const dockerEnv = finalLines.filter((l) => /^ENV\s/i.test(l)).flatMap((l) => l.replace(/^ENV\s+/i, "").split(/\s+/));
const entrypoint = JSON.parse(finalLines.filter((l) => /^ENTRYPOINT\s/i.test(l)).at(-1)?.replace(/^ENTRYPOINT\s+/i, "") ?? "[]");
const workdir = finalLines.filter((l) => /^WORKDIR\s/i.test(l)).at(-1)?.split(/\s+/)[1];
const layersFrom = (chain) => chain.flatMap((s) => s.lines).filter((l) => /^COPY\s/i.test(l))
  .map((l) => l.match(/\/layers\/([abc])\/?\s/)?.[1]).filter(Boolean).join("");
const stageNamed = (name) => stages.find((s) => s.name === name);
const runtimeStage = chainOf(final)[0];
const checks = [
  ["at least two stages (build, runtime)", stages.length >= 2],
  ["build stage is a CUDA 13 devel image on Ubuntu 24.04",
    /^nvidia\/cuda:13\.[\d.]+-(cudnn-)?devel-ubuntu24\.04$/.test(expand(stages[0]?.image ?? ""))],
  ["builds with docs/BUILDING.md's presets (cmake --preset release, cmake --build --preset release)",
    stages[0]?.lines.some((l) => /cmake --preset release/.test(l) && /cmake --build --preset release/.test(l))],
  ["builds the mnist-train target", stages[0]?.lines.some((l) => /--target mnist-train/.test(l))],
  ["CUDA architectures come from a build argument that includes 90",
    /(^|;)90(-real|-virtual)?(;|$)/.test(args.CUDA_ARCHITECTURES ?? "") &&
      stages[0]?.lines.some((l) => /CMAKE_CUDA_ARCHITECTURES="?\$\{CUDA_ARCHITECTURES\}/.test(l))],
  ["a build argument bakes the dataset in with --download_only (same checksums)",
    "BAKE_DATA" in args && stages.some((s) => s.lines.some((l) => /--download_only/.test(l)))],
  ["a stage lays the layers out with scripts/build-image.sh --stage-only /layers",
    stages.some((s) => s.lines.some((l) => /^RUN\s.*scripts\/build-image\.sh\s.*--stage-only \/layers\b/.test(l)))],
  ["the final image (the node check) starts FROM scratch and holds layers a and b, not c",
    runtimeStage?.image === "scratch" && layersFrom(chainOf(final)) === "ab"],
  ["a `baseline` stage is the node check's layers and c",
    layersFrom(chainOf(stageNamed("baseline"))) === "abc" && chainOf(stageNamed("baseline"))[0] === runtimeStage],
  ["final stage runs as a numeric non-root user, the one the Job runs as",
    numericNonRoot && (!manifest || finalUser.split(":")[0] === runsAs(podOf(manifest, "Job")))],
  ["ENTRYPOINT is the trainer, exec form",
    finalLines.some((l) => /^ENTRYPOINT\s+\[\s*"[^"]*\/mnist-train"\s*\]$/.test(l))],
  ["user, environment, working folder and entrypoint are scripts/build-image.sh's",
    finalUser === flag("user")[0] && workdir === flag("workingdir")[0] &&
      JSON.stringify(entrypoint) === JSON.stringify(flag("entrypoint")) &&
      JSON.stringify([...dockerEnv].sort()) === JSON.stringify([...flag("env")].sort()) && dockerEnv.length > 0],
  ["NVIDIA_VISIBLE_DEVICES is left to the runtime (the device plugin sets it)",
    !dockerEnv.some((e) => e.startsWith("NVIDIA_VISIBLE_DEVICES="))],
  ["final stage copies only the layers and data from earlier stages",
    chainOf(final).flatMap((s) => s.lines).filter((l) => /^COPY\s/i.test(l)).every((l) => /--from=/.test(l))],
  [".dockerignore excludes .git, build/ and cached data",
    (() => {
      const ignore = fs.readFileSync(dockerignore, "utf8").split("\n").map((l) => l.trim());
      return [".git", "build/", ".cache/"].every((p) => ignore.includes(p));
    })()],
];
let failed = 0;
for (const [what, ok] of checks) {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failed++;
}
process.exit(failed ? 1 : 0);

// node check_dockerfile.mjs DOCKERFILE DOCKERIGNORE — the static checks a reviewer would make,
// since no Docker engine runs in CI: multi-stage on CUDA 13 Ubuntu 24.04 images, built with the
// README's CMake presets, CUDA architectures as a build argument covering 90, a numeric non-root
// USER in the final stage, the trainer as ENTRYPOINT (exec form), the optional baked dataset, and
// a .dockerignore that keeps builds and data out of the context.
import fs from "node:fs";

const [dockerfile, dockerignore] = process.argv.slice(2);
const text = fs.readFileSync(dockerfile, "utf8");
// Join continuation lines, drop comments and heredoc-free blank lines.
const lines = text.replace(/\\\n/g, " ").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
const stages = [];
for (const line of lines) {
  const m = line.match(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i);
  if (m) stages.push({ image: m[1], name: m[2], lines: [] });
  else if (stages.length) stages.at(-1).lines.push(line);
}
const args = Object.fromEntries(lines.map((l) => l.match(/^ARG\s+(\w+)=?"?([^"]*)"?/)).filter(Boolean).map((m) => [m[1], m[2]]));
const expand = (s) => s.replace(/\$\{(\w+)\}/g, (_, k) => args[k] ?? "");
const final = stages.at(-1);
const checks = [
  ["at least two stages (build, runtime)", stages.length >= 2],
  ["build stage is a CUDA 13 devel image on Ubuntu 24.04",
    /^nvidia\/cuda:13\.[\d.]+-(cudnn-)?devel-ubuntu24\.04$/.test(expand(stages[0]?.image ?? ""))],
  ["runtime stage is the matching CUDA 13 runtime image",
    /^nvidia\/cuda:13\.[\d.]+-(cudnn-)?runtime-ubuntu24\.04$/.test(expand(final?.image ?? ""))],
  ["builds with the README's presets (cmake --preset release, cmake --build --preset release)",
    stages[0]?.lines.some((l) => /cmake --preset release/.test(l) && /cmake --build --preset release/.test(l))],
  ["builds the mnist-train target", stages[0]?.lines.some((l) => /--target mnist-train/.test(l))],
  ["CUDA architectures come from a build argument that includes 90",
    /(^|;)90(-real|-virtual)?(;|$)/.test(args.CUDA_ARCHITECTURES ?? "") &&
      stages[0]?.lines.some((l) => /CMAKE_CUDA_ARCHITECTURES="?\$\{CUDA_ARCHITECTURES\}/.test(l))],
  ["a build argument bakes the dataset in with --download_only (same checksums)",
    "BAKE_DATA" in args && stages.some((s) => s.lines.some((l) => /--download_only/.test(l)))],
  ["final stage runs as a numeric non-root user",
    (() => {
      const user = final?.lines.filter((l) => /^USER\s/i.test(l)).at(-1)?.split(/\s+/)[1] ?? "";
      return /^\d+(:\d+)?$/.test(user) && !/^0(:|$)/.test(user);
    })()],
  ["ENTRYPOINT is the trainer, exec form",
    final?.lines.some((l) => /^ENTRYPOINT\s+\[\s*"[^"]*\/mnist-train"\s*\]$/.test(l))],
  ["final stage copies only the binary and data from earlier stages",
    final?.lines.filter((l) => /^COPY\s/i.test(l)).every((l) => /--from=/.test(l))],
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

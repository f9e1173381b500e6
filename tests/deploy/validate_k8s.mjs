// node validate_k8s.mjs MANIFEST...  — validates every document strictly against the upstream
// Kubernetes API schema carried by npm's kubernetes-models:
//   1. its runtime validator (types, enums, formats, required fields), and
//   2. the TypeScript compiler over the document as a typed object literal, whose excess-property
//      check rejects every field the API does not define (a typo like runAsNonRot fails).
// MANIFEST is a plain manifest or the output of `kubectl kustomize` (check_overlay.sh renders the
// overlays); kustomize's own files (kustomization.yaml) are not API objects and are refused.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import yaml from "js-yaml";

const here = path.dirname(new URL(import.meta.url).pathname);
const args = process.argv.slice(2);

function modulePath(apiVersion) {
  return apiVersion.includes("/") ? `kubernetes-models/${apiVersion}` : `kubernetes-models/v1`;
}

let failures = 0;
const work = fs.mkdtempSync(path.join(os.tmpdir(), "k8s-validate-"));
const tsFiles = [];
for (const file of args) {
  const docs = yaml.loadAll(fs.readFileSync(file, "utf8")).filter(Boolean);
  if (docs.length === 0) {
    console.log(`FAIL ${file}: no documents`);
    failures++;
  }
  docs.forEach((doc, i) => tsFiles.push({ file, i, doc }));
  for (const [i, doc] of docs.entries()) {
    const where = `${file}#${i} (${doc.apiVersion} ${doc.kind})`;
    try {
      const mod = await import(modulePath(doc.apiVersion));
      const Model = mod[doc.kind];
      if (!Model) throw new Error(`unknown kind ${doc.kind} in ${doc.apiVersion}`);
      new Model(doc).validate();
      console.log(`ok   ${where}: schema`);
    } catch (e) {
      console.log(`FAIL ${where}: ${e.message}`);
      failures++;
    }
  }
}
// Strict unknown-field check through TypeScript's excess-property check on object literals.
for (const [n, { doc }] of tsFiles.entries()) {
  const src = `import type { I${doc.kind} } from "${modulePath(doc.apiVersion)}";\n` +
    `export const doc: I${doc.kind} = ${JSON.stringify(doc, null, 2)};\n`;
  fs.writeFileSync(path.join(work, `doc${n}.ts`), src);
}
const require = createRequire(import.meta.url);
const tsc = require.resolve("typescript/bin/tsc");
fs.writeFileSync(path.join(work, "tsconfig.json"), JSON.stringify({
  compilerOptions: { strict: true, noEmit: true, module: "nodenext", moduleResolution: "nodenext",
                     target: "es2022", skipLibCheck: true, typeRoots: [], baseUrl: here,
                     paths: { "kubernetes-models/*": [path.join(here, "node_modules/kubernetes-models/*")] } },
  include: ["*.ts"],
}));
fs.symlinkSync(path.join(here, "node_modules"), path.join(work, "node_modules"));
try {
  execFileSync(process.execPath, [tsc, "-p", work], { stdio: "pipe" });
  tsFiles.forEach(({ file, i, doc }) => console.log(`ok   ${file}#${i} (${doc.apiVersion} ${doc.kind}): no unknown fields`));
} catch (e) {
  const out = e.stdout.toString();
  for (const line of out.split("\n").filter(Boolean)) {
    const m = line.match(/doc(\d+)\.ts/);
    const where = m ? `${tsFiles[+m[1]].file}#${tsFiles[+m[1]].i}` : "?";
    console.log(`FAIL ${where}: ${line.replace(/^.*?error /, "")}`);
  }
  failures++;
}
fs.rmSync(work, { recursive: true, force: true });
if (failures) {
  console.log(`${failures} problem(s)`);
  process.exit(1);
}
console.log("all manifests valid");

// node pool_jobs.mjs MANIFEST...: what check_pool.sh asserts about the Jobs scripts/check-pool.sh
// created, one line per Job: NAME <TAB> NODE <TAB> GPUS <TAB> ACTIVE_DEADLINE <TAB> RUN_LABEL
// <TAB> BACKOFF_LIMIT <TAB> ARGS (space-separated) <TAB> NODE_NAME_FIELD. NODE is the single value
// of the required node affinity on metadata.name ("" when the Job is not pinned that way), the run
// label is on the Job and on its pods ("" unless both agree), NODE_NAME_FIELD is spec.nodeName
// ("" when unset).
import fs from "node:fs";
import yaml from "js-yaml";

for (const file of process.argv.slice(2)) {
  for (const d of yaml.loadAll(fs.readFileSync(file, "utf8")).filter(Boolean)) {
    const spec = d.spec?.template?.spec ?? {};
    const terms = spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
    const fields = terms.length === 1 ? terms[0].matchFields ?? [] : [];
    const pin = fields.length === 1 && fields[0].key === "metadata.name" && fields[0].operator === "In" &&
      fields[0].values?.length === 1 && typeof fields[0].values[0] === "string" ? fields[0].values[0] : "";
    const c = (spec.containers ?? []).find((k) => k.name === "mnist-train") ?? {};
    const run = d.metadata?.labels?.["mnist-train/pool-run"];
    const podRun = d.spec?.template?.metadata?.labels?.["mnist-train/pool-run"];
    console.log([d.metadata?.name, pin, c.resources?.limits?.["nvidia.com/gpu"], d.spec?.activeDeadlineSeconds,
      run === podRun ? run ?? "" : "", d.spec?.backoffLimit, (c.args ?? []).join(" "), spec.nodeName ?? ""].join("\t"));
  }
}

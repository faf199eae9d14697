// Validates Kubernetes objects (a multi-document YAML stream on stdin)
// against the Kubernetes JSON schemas shipped by npm's kubernetes-models
// (core API) and @kubernetes-models/{prometheus-operator,autoscaler} (CRDs).
// Prints one line per object; exits 1 if any object fails or has a kind no
// schema covers (unless listed with --allow-kind Kind).
import { parseAllDocuments } from "yaml";
const allow = new Set();
for (let i = 2; i < process.argv.length; i++) {
  if (process.argv[i] === "--allow-kind") allow.add(process.argv[++i]);
}

async function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const candidates = [];
  if (group === "") candidates.push(`kubernetes-models/${version}`);
  else candidates.push(`kubernetes-models/${group}/${version}`);
  candidates.push(`@kubernetes-models/prometheus-operator/${group}/${version}`);
  candidates.push(`@kubernetes-models/autoscaler/${group}/${version}`);
  for (const path of candidates) {
    try {
      const mod = await import(path);
      if (mod[kind]) return mod[kind];
    } catch (e) {
      if (e.code !== "ERR_MODULE_NOT_FOUND" && e.code !== "ERR_PACKAGE_PATH_NOT_EXPORTED") throw e;
    }
  }
  return null;
}

let input = "";
process.stdin.setEncoding("utf8");
for await (const chunk of process.stdin) input += chunk;

let failed = 0;
for (const doc of parseAllDocuments(input)) {
  if (doc.errors.length) {
    console.log(`YAML error: ${doc.errors[0].message}`);
    failed++;
    continue;
  }
  const obj = doc.toJS();
  if (!obj) continue;
  const name = `${obj.kind}/${obj.metadata?.name}`;
  const Model = await modelFor(obj.apiVersion ?? "", obj.kind ?? "");
  if (!Model) {
    if (allow.has(obj.kind)) {
      console.log(`skipped ${name}: no schema for ${obj.apiVersion} ${obj.kind} (allowed)`);
      continue;
    }
    console.log(`FAIL ${name}: no schema for ${obj.apiVersion} ${obj.kind}`);
    failed++;
    continue;
  }
  try {
    new Model(obj).validate();
    console.log(`ok ${name}`);
  } catch (e) {
    console.log(`FAIL ${name}: ${e.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);

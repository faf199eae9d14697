// Parses every .tf file under a directory with npm's @cdktf/hcl2json (the
// HCL parser of HashiCorp's hcl library, compiled to WebAssembly) and prints
// {"relative/path.tf": <parsed>, ...} as JSON. Exit 1 on a parse error.
import { parse } from "@cdktf/hcl2json";
import { readFileSync, readdirSync, statSync } from "fs";
import { join, relative } from "path";

const root = process.argv[2];
const out = {};
function walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (name.startsWith(".")) continue;
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith(".tf")) out[relative(root, p)] = p;
  }
}
walk(root);
let failed = false;
for (const [rel, p] of Object.entries(out)) {
  try {
    out[rel] = await parse(rel, readFileSync(p, "utf8"));
  } catch (e) {
    console.error(`${rel}: ${e.message ?? e}`);
    failed = true;
  }
}
console.log(JSON.stringify(out, null, 1));
process.exit(failed ? 1 : 0);

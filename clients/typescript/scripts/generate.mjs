// src/schema.d.ts from the API's OpenAPI document, with openapi-typescript
// (the version pinned in package-lock.json).
//
//   node scripts/generate.mjs          writes src/schema.d.ts  (npm run generate)
//   node scripts/generate.mjs --check  regenerates into a temp file and fails,
//                                      printing the diff, when the committed
//                                      one differs            (npm run check-generated)
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const spec = join(root, "..", "..", "shared", "src", "http", "openapi.json");
const committed = join(root, "src", "schema.d.ts");
const cli = join(root, "node_modules", "openapi-typescript", "bin", "cli.js");
// Defaults stay optional in request bodies (CreateJob's payload, priority).
const flags = ["--default-non-nullable", "false"];
const check = process.argv.includes("--check");

function generate(out) {
  const r = spawnSync(process.execPath, [cli, spec, "--output", out, ...flags], {
    cwd: root,
    stdio: ["ignore", check ? "ignore" : "inherit", "inherit"],
  });
  if (r.status !== 0) {
    console.error("generate: openapi-typescript failed (did npm ci run?)");
    process.exit(1);
  }
}

if (!check) {
  generate(committed);
  process.exit(0);
}

const dir = mkdtempSync(join(tmpdir(), "jobline-schema-"));
const fresh = join(dir, "schema.d.ts");
let same = false;
try {
  generate(fresh);
  if (!existsSync(committed)) {
    console.error("check-generated: src/schema.d.ts is missing; run npm run generate and commit it");
    process.exit(1);
  }
  same = readFileSync(committed, "utf8") === readFileSync(fresh, "utf8");
  if (!same) {
    spawnSync("diff", ["-u", "--label", "src/schema.d.ts (committed)", "--label", "src/schema.d.ts (from openapi.json)", committed, fresh], {
      stdio: "inherit",
    });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
if (!same) {
  console.error("check-generated: src/schema.d.ts differs from what openapi.json generates; run npm run generate and commit it");
  process.exit(1);
}
console.log("check-generated: src/schema.d.ts matches openapi.json");

// tsc does not copy .d.ts inputs: put the generated schema beside the
// emitted index.d.ts, which imports it.
import { copyFileSync } from "node:fs";
copyFileSync(new URL("../src/schema.d.ts", import.meta.url), new URL("../dist/schema.d.ts", import.meta.url));

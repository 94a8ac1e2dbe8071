// One of two processes storing the same bundle as the last good one, as two workers of a gateway
// do when they activate it at the same moment: waits for the common start time, then stores it
// into `count` fresh state directories in order. Exits 1 (with the error) when a store throws.
// Usage: bun store-last-good.ts <policy dir> <state root> <count> <start time ms>
import { join } from "node:path";
import { readUnsignedBundle, storeLastGoodBundle } from "../../src/bundle/mod.ts";

const [source, root, countText, startText] = process.argv.slice(2);
const read = await readUnsignedBundle(source!);
if (!read.ok) throw new Error("fixture unreadable");
while (Date.now() < Number(startText)) await new Promise((resolve) => setTimeout(resolve, 1));
for (let i = 0; i < Number(countText); i++) {
  try {
    storeLastGoodBundle(join(root!, `state-${i}`), read.bundle);
  } catch (error) {
    console.error(`store ${i}: ${(error as Error).message}`);
    process.exit(1);
  }
}

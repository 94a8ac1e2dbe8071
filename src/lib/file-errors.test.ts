import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { errnoOf, fileErrorReason } from "./mod.ts";

function thrownBy(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error("expected a throw");
}

test("real file-system failures read as words, with their errno", () => {
  const missing = thrownBy(() => readFileSync("/nonexistent/dutygate/file"));
  expect(errnoOf(missing)).toBe("ENOENT");
  expect(fileErrorReason(missing)).toBe("no such file or directory");
  const directory = thrownBy(() => readFileSync("/"));
  expect(errnoOf(directory)).toBe("EISDIR");
  expect(fileErrorReason(directory)).toBe("is a directory");
});

test.each<[unknown, string | null, string]>([
  [Object.assign(new Error("x"), { code: "EMFILE" }), "EMFILE", "emfile"],
  [Object.assign(new Error("bad key"), { code: "BUNDLE_KEY_INVALID" }), null, "bad key"],
  [new SyntaxError("Unexpected token"), null, "Unexpected token"],
  ["plain text", null, "plain text"],
  [null, null, "null"],
])("%p: errno %p, reason %p", (error, errno, reason) => {
  expect(errnoOf(error)).toBe(errno);
  expect(fileErrorReason(error)).toBe(reason);
});

// The catalogue of error codes (src/error-codes.ts) and the docs agree: docs/errors.md is the
// catalogue rendered, and every code a topical error table of docs/ lists is in it, with the
// same HTTP status.
import { describe, expect, test } from "bun:test";
import { EXIT } from "../../src/cli/mod.ts";
import { ERROR_CODE_LIST, ERROR_CODES, isErrorCode } from "../../src/error-codes.ts";
import { documentedErrorCodeTable, renderErrorCodeTable, topicalErrorTables } from "../support/error-catalogue.ts";

describe("the catalogue of error codes", () => {
  test("docs/errors.md lists every code of the catalogue and no other (fix: bun scripts/update-golden.ts)", () => {
    expect(documentedErrorCodeTable()).toBe(renderErrorCodeTable());
  });

  test("every code of the docs' error tables is in the catalogue, with the status the catalogue gives", () => {
    const documented = topicalErrorTables();
    // The tables exist: authentication, bundles, configuration, deploy (start-up), proxy.
    expect(new Set(documented.map((d) => d.file)).size).toBeGreaterThanOrEqual(5);
    const unknown = documented.filter((d) => !isErrorCode(d.code)).map((d) => `${d.file}:${d.line}: \`${d.code}\``);
    expect(unknown).toEqual([]);
    const otherStatus = documented
      .filter((d) => d.http !== null && isErrorCode(d.code) && (ERROR_CODES[d.code] as { http?: number }).http !== d.http)
      .map((d) => `${d.file}:${d.line}: \`${d.code}\` ${d.http}`);
    expect(otherStatus).toEqual([]);
  });

  test("codes are upper snake case, each exit code is one of `gateway --help`, each status an HTTP error", () => {
    const exits = new Set<number>(Object.values(EXIT));
    for (const code of ERROR_CODE_LIST) {
      const info = ERROR_CODES[code] as { meaning: string; http?: number; exit?: number };
      expect(code).toMatch(/^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$/);
      expect(info.meaning).toMatch(/^[^A-Z].*[^.]$/); // lowercase start, no final period
      if (info.exit !== undefined) expect(exits.has(info.exit) && info.exit !== EXIT.ok).toBe(true);
      if (info.http !== undefined) expect(info.http >= 400 && info.http <= 599).toBe(true);
    }
  });

  test("isErrorCode knows the catalogue and nothing else", () => {
    expect(isErrorCode("BUNDLE_EXPIRED")).toBe(true);
    expect(isErrorCode("DENY_NO_GRANT")).toBe(false); // the language's, not the gateway's
    expect(isErrorCode("toString")).toBe(false);
  });
});

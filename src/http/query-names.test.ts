import { describe, expect, test } from "bun:test";
import { methodOverrideParameter, queryNameReadings, splitQuery } from "./query-names.ts";

describe("queryNameReadings: the names frameworks file a parameter under", () => {
  const cases: Array<[string, string[]]> = [
    ["all", ["all"]],
    ["All", ["all"]],
    ["all[]", ["all[]", "all"]],
    ["all[x][y]", ["all[x][y]", "all"]],
    [".method", [".method", "_method"]],
    ["a.b c", ["a.b c", "a_b_c"]],
    // PHP drops leading spaces; mapping them to `_` is the stricter reading, so both count.
    [" method", [" method", "method", "_method"]],
    // An unmatched `[` is `_` to PHP, and so is every later ` `, `.` or `[`.
    ["a[b.c", ["a[b.c", "a_b_c", "a"]],
    // PHP reads a name as a C string: up to NUL.
    ["all\0x", ["all", "all\0x"]],
    // Rack skips leading brackets.
    ["[[all", ["[[all", "__all", "all"]],
  ];
  for (const [name, readings] of cases) {
    test(JSON.stringify(name), () => expect(queryNameReadings(name)).toEqual(readings));
  }
});

describe("splitQuery", () => {
  test("decodes names (`+` as space, percent-escapes, bad escapes kept) and keeps raw values and repeats", () => {
    expect(splitQuery("a+b=1&%5Fme%74hod=PUT&bad%zz=x&a+b=2&flag&&=", false)).toEqual([
      { name: "a b", rawValue: "1" }, { name: "_method", rawValue: "PUT" }, { name: "bad%zz", rawValue: "x" },
      { name: "a b", rawValue: "2" }, { name: "flag", rawValue: "" }, { name: "", rawValue: "" },
    ]);
  });
  test("splits at `;` only when asked", () => {
    expect(splitQuery("a=1;b=2", false)).toEqual([{ name: "a", rawValue: "1;b=2" }]);
    expect(splitQuery("a=1;b=2", true)).toEqual([{ name: "a", rawValue: "1" }, { name: "b", rawValue: "2" }]);
  });
  test("bytes that are not UTF-8 decode to U+FFFD, as WHATWG does", () => {
    expect(splitQuery("%FFa=1", false)[0]!.name).toBe("\uFFFDa");
  });
});

describe("methodOverrideParameter", () => {
  const refused = [
    "_method=DELETE", "_me%74hod=DELETE", "%5F%6D%65%74%68%6F%64=DELETE", "a=1&_me%74hod=PUT", ".method=DELETE", "+method=DELETE",
    "%20_method=DELETE", "_method[]=DELETE", "_method%5B%5D=DELETE", "_METHOD=x", "_method%00x=DELETE", "a=1;_method=DELETE", "[_method]=x",
  ];
  for (const query of refused) test(`refuses ${query}`, () => expect(methodOverrideParameter(query)).not.toBeNull());
  const allowed = ["", "method=card", "payment_method=card", "a=_method", "x=1&y=2", "%5Fmethods=1", "_me%2574hod=DELETE"];
  for (const query of allowed) test(`allows ${JSON.stringify(query)}`, () => expect(methodOverrideParameter(query)).toBeNull());
});

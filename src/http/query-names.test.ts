import { describe, expect, test } from "bun:test";
import { ambiguousQueryParameter, methodOverrideParameter, queryNameReadings, splitQuery } from "./query-names.ts";

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

describe("ambiguousQueryParameter: a read parameter has one value every framework reads alike", () => {
  const cases: Array<[query: string, ambiguous: boolean, detail?: RegExp]> = [
    ["", false],
    ["all=1", false],
    ["a%6Cl=1", false], // decoded, it is spelt `all`
    ["all=0&x=1&x=2", false], // repeats of a name the policy does not read
    ["x=a;b", false], // `;` outside a read parameter
    ["all=0&all=1", true, /appears 2 times/],
    ["all=1&all=1", true, /appears 2 times/],
    ["all[]=1", true, /`all\[\]` is read as `all`/],
    ["all%5B0%5D=1", true, /`all\[0\]`/],
    ["ALL=1", true, /`ALL` is read as `all`/],
    ["all=0&+all=1", true, /` all` is read as `all`/],
    ["all=0&all%00x=1", true],
    ["all=0;all=1", true, /`;`/],
    ["x=1;all=1", true, /`;`/],
    ["all=0;x", true, /`;`/],
  ];
  for (const [query, ambiguous, detail] of cases) {
    test(`${JSON.stringify(query)}: ${ambiguous ? "ambiguous" : "one value"}`, () => {
      const found = ambiguousQueryParameter(query, ["all"]);
      expect(found !== null).toBe(ambiguous);
      if (found !== null) expect(found.name).toBe("all");
      if (detail) expect(found!.detail).toMatch(detail);
    });
  }

  test("only the names the policy reads count, each on its own", () => {
    expect(ambiguousQueryParameter("a=1&a=2&b=1", ["b"])).toBeNull();
    expect(ambiguousQueryParameter("a=1&a=2&b=1", ["b", "a"])?.name).toBe("a");
    expect(ambiguousQueryParameter("a=1&a=2", [])).toBeNull();
  });
});

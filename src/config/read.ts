// Typed reading of one parsed TOML table. Every accessor records the key as allowed, converts
// the value, and on a problem records a ConfigError (with the key path and, when found, the
// line) instead of throwing, so one run reports every problem. `finish()` then reports the
// keys nobody asked for as unknown, with a "did you mean" over the keys that were asked for.
import { existsSync, statSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { parseDuration } from "../../dsl/mod.ts";
import { closestMatch } from "./suggest.ts";
import { formatKeyPath, positionOf, type KeySegment, type SourcePosition } from "./locate.ts";
import type { ConfigError, ConfigErrorCode } from "./types.ts";

/** State shared by all sections of one config file. */
export class ConfigContext {
  readonly errors: ConfigError[] = [];
  constructor(
    /** Directory relative paths resolve against. */
    readonly baseDir: string,
    private readonly positions: ReadonlyMap<string, SourcePosition>,
    /** Whether named files (certificates, keys, CA, JWKS, secrets) must exist. */
    readonly checkFiles: boolean,
  ) {}

  report(code: ConfigErrorCode, segments: readonly KeySegment[], message: string, help?: string): void {
    const path = formatKeyPath(segments);
    const at = positionOf(this.positions, segments);
    const error: ConfigError = { code, path, message: path ? `${path}: ${message}` : message };
    if (help) error.help = help;
    if (at) { error.line = at.line; error.col = at.col; }
    this.errors.push(error);
  }

  resolvePath(text: string): string {
    return isAbsolute(text) ? text : resolve(this.baseDir, text);
  }
}

type Table = Record<string, unknown>;

export function isTable(value: unknown): value is Table {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Date) && value.constructor?.name !== "TomlDate";
}

/** Describes a TOML value for "expected X, got Y" messages. */
export function describeValue(value: unknown): string {
  if (typeof value === "string") return `string \`${value.length > 40 ? value.slice(0, 40) + "…" : value}\``;
  if (typeof value === "number") return Number.isInteger(value) ? `integer \`${value}\`` : `float \`${value}\``;
  if (typeof value === "boolean") return `boolean \`${value}\``;
  if (Array.isArray(value)) return "array";
  if (isTable(value)) return "table";
  return "date";
}

const SIZE_UNITS: Record<string, number> = {
  "": 1, b: 1, kb: 1e3, kib: 1024, mb: 1e6, mib: 1024 ** 2, gb: 1e9, gib: 1024 ** 3,
};

/** Parses `10MiB`, `512KB`, `1GiB`, `4096` (bytes) into bytes. */
export function parseSize(text: string): number | null {
  const m = /^(\d+)\s*([A-Za-z]*)$/.exec(text.trim());
  if (!m) return null;
  const unit = SIZE_UNITS[m[2]!.toLowerCase()];
  if (unit === undefined) return null;
  const bytes = Number(m[1]) * unit;
  return Number.isSafeInteger(bytes) ? bytes : null;
}

/** One TOML table being read; see the file comment. */
export class Section {
  private readonly asked = new Set<string>();

  constructor(
    readonly ctx: ConfigContext,
    readonly segments: readonly KeySegment[],
    readonly raw: Readonly<Table>,
  ) {}

  at(key: KeySegment): KeySegment[] {
    return [...this.segments, key];
  }

  has(key: string): boolean {
    this.asked.add(key);
    return this.raw[key] !== undefined;
  }

  private take(key: string): unknown {
    this.asked.add(key);
    return this.raw[key];
  }

  private wrongType(key: string, expected: string, value: unknown): void {
    this.ctx.report("CONFIG_WRONG_TYPE", this.at(key), `expected ${expected}, got ${describeValue(value)}`);
  }

  private missing(key: string, what: string): void {
    this.ctx.report("CONFIG_MISSING_KEY", this.at(key), `missing required key \`${key}\` (${what})`);
  }

  /** A string; `fallback` when absent; null (and an error when `required`) when absent without fallback. */
  string(key: string, fallback: string): string;
  string(key: string, fallback: null, required?: boolean): string | null;
  string(key: string, fallback: string | null, required = false): string | null {
    const value = this.take(key);
    if (value === undefined) {
      if (fallback === null && required) this.missing(key, "a string");
      return fallback;
    }
    if (typeof value !== "string") { this.wrongType(key, "a string", value); return fallback; }
    return value;
  }

  boolean(key: string, fallback: boolean): boolean {
    const value = this.take(key);
    if (value === undefined) return fallback;
    if (typeof value !== "boolean") { this.wrongType(key, "a boolean (`true` or `false`)", value); return fallback; }
    return value;
  }

  integer(key: string, fallback: number, range: { min?: number; max?: number } = {}): number {
    const value = this.take(key);
    if (value === undefined) return fallback;
    if (typeof value !== "number" || !Number.isSafeInteger(value)) { this.wrongType(key, "an integer", value); return fallback; }
    const { min, max } = range;
    if ((min !== undefined && value < min) || (max !== undefined && value > max)) {
      const bounds = min !== undefined && max !== undefined ? `between ${min} and ${max}` : min !== undefined ? `at least ${min}` : `at most ${max}`;
      this.ctx.report("CONFIG_BAD_VALUE", this.at(key), `must be ${bounds}, got \`${value}\``);
      return fallback;
    }
    return value;
  }

  /** A whole number in `range`, or the string `"auto"`, for which `auto()` decides (`workers = "auto"`). */
  integerOrAuto(key: string, fallback: number, auto: () => number, range: { min?: number; max?: number } = {}): number {
    const value = this.rawValue(key);
    if (typeof value !== "string") return this.integer(key, fallback, range);
    this.take(key);
    if (value === "auto") return auto();
    const near = closestMatch(value, ["auto"]);
    this.ctx.report("CONFIG_BAD_VALUE", this.at(key), `expected an integer or \`"auto"\`, got \`${value}\``, near ? "did you mean `\"auto\"`?" : undefined);
    return fallback;
  }

  /**
   * A duration string (`30s`, `15m`, `1h30m`, `250ms`, `7d`) in milliseconds. `max` comes with
   * the reason for the bound, shown as the error's help.
   */
  duration(key: string, fallback: number, range: { min?: number; max?: { ms: number; why: string } } = {}): number {
    const value = this.take(key);
    if (value === undefined) return fallback;
    const ms = typeof value === "string" ? parseDuration(value) : null;
    if (ms === null) {
      this.ctx.report("CONFIG_BAD_DURATION", this.at(key), `expected a duration such as \`30s\`, \`15m\` or \`1h30m\`, got ${describeValue(value)}`,
        typeof value === "number" ? `write the unit, e.g. \`${value}s\`` : undefined);
      return fallback;
    }
    if (range.min !== undefined && ms < range.min) {
      this.ctx.report("CONFIG_BAD_DURATION", this.at(key), `must be at least ${range.min}ms, got \`${value as string}\``);
      return fallback;
    }
    if (range.max !== undefined && ms > range.max.ms) {
      this.ctx.report("CONFIG_BAD_DURATION", this.at(key), `must be at most ${durationText(range.max.ms)}, got \`${value as string}\``, range.max.why);
      return fallback;
    }
    return ms;
  }

  /** A size: an integer number of bytes or a string with a unit (`10MiB`, `512KB`). */
  size(key: string, fallback: number, range: { min?: number } = {}): number {
    const value = this.take(key);
    if (value === undefined) return fallback;
    const bytes = typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? value : typeof value === "string" ? parseSize(value) : null;
    if (bytes === null) {
      this.ctx.report("CONFIG_BAD_SIZE", this.at(key), `expected a size such as \`10MiB\`, \`512KB\` or a number of bytes, got ${describeValue(value)}`);
      return fallback;
    }
    if (range.min !== undefined && bytes < range.min) {
      this.ctx.report("CONFIG_BAD_SIZE", this.at(key), `must be at least ${range.min} bytes, got \`${String(value)}\``);
      return fallback;
    }
    return bytes;
  }

  /** One of `choices` (strings), with "did you mean" on a near miss. */
  choice<T extends string>(key: string, choices: readonly T[], fallback: T): T {
    const value = this.take(key);
    if (value === undefined) return fallback;
    if (typeof value !== "string") { this.wrongType(key, `one of ${choices.map((c) => `\`${c}\``).join(", ")}`, value); return fallback; }
    if (!(choices as readonly string[]).includes(value)) {
      const near = closestMatch(value, choices);
      this.ctx.report("CONFIG_BAD_VALUE", this.at(key), `\`${value}\` is not one of ${choices.map((c) => `\`${c}\``).join(", ")}`,
        near ? `did you mean \`${near}\`?` : undefined);
      return fallback;
    }
    return value as T;
  }

  /** A list of strings; a single string is accepted as a one-element list when `allowSingle`. */
  stringList(key: string, fallback: string[], options: { allowSingle?: boolean; nonEmpty?: boolean } = {}): string[] {
    const value = this.take(key);
    if (value === undefined) return fallback;
    if (typeof value === "string" && options.allowSingle) return [value];
    if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
      this.wrongType(key, options.allowSingle ? "a string or a list of strings" : "a list of strings", value);
      return fallback;
    }
    if (options.nonEmpty && value.length === 0) {
      this.ctx.report("CONFIG_BAD_VALUE", this.at(key), "must not be empty");
      return fallback;
    }
    return value as string[];
  }

  /**
   * A path to an existing file (resolved against the config file's directory). A missing file is
   * an error only when the context checks files; the resolved path is returned either way.
   */
  file(key: string, options: { required?: boolean; what: string }): string | null {
    const text = this.string(key, null, options.required ?? false);
    if (text === null) return null;
    if (text === "") { this.ctx.report("CONFIG_BAD_VALUE", this.at(key), "must not be empty"); return null; }
    const path = this.ctx.resolvePath(text);
    if (this.ctx.checkFiles) {
      if (!existsSync(path)) this.ctx.report("CONFIG_FILE_NOT_FOUND", this.at(key), `${options.what} \`${path}\` does not exist`);
      else if (!statSync(path).isFile()) this.ctx.report("CONFIG_FILE_NOT_FOUND", this.at(key), `${options.what} \`${path}\` is not a file`);
    }
    return path;
  }

  /** A directory path (resolved); it need not exist yet (the gateway creates it). */
  directory(key: string, fallback: string): string {
    const text = this.string(key, fallback);
    if (text === "") { this.ctx.report("CONFIG_BAD_VALUE", this.at(key), "must not be empty"); return this.ctx.resolvePath(fallback); }
    return this.ctx.resolvePath(text);
  }

  /** A sub-table, or null when absent (or not a table, which is reported). */
  table(key: string): Section | null {
    const value = this.take(key);
    if (value === undefined) return null;
    if (!isTable(value)) { this.wrongType(key, "a table", value); return null; }
    return new Section(this.ctx, this.at(key), value);
  }

  /** An array of tables (`[[key]]`); [] when absent. */
  tableArray(key: string): Section[] {
    const value = this.take(key);
    if (value === undefined) return [];
    if (!Array.isArray(value) || value.some((v) => !isTable(v))) { this.wrongType(key, "an array of tables", value); return []; }
    return value.map((entry, index) => new Section(this.ctx, [...this.at(key), index], entry as Table));
  }

  /** The raw value of a free-form key (constants, identity attributes), marked as known. */
  rawValue(key: string): unknown {
    return this.take(key);
  }

  /** Every key of a free-form table (names of issuers, upstreams, identities). */
  keys(): string[] {
    for (const key of Object.keys(this.raw)) this.asked.add(key);
    return Object.keys(this.raw);
  }

  /** Reports each key that no accessor asked for as unknown, suggesting the closest known key. */
  finish(): void {
    for (const key of Object.keys(this.raw)) {
      if (this.asked.has(key)) continue;
      const near = closestMatch(key, this.asked);
      this.ctx.report("CONFIG_UNKNOWN_KEY", this.at(key), `unknown key \`${key}\``, near ? `did you mean \`${near}\`?` : `known keys: ${[...this.asked].join(", ")}`);
    }
  }
}

/** Milliseconds in the largest whole unit of the duration syntax: `600000` → `10m`. */
function durationText(ms: number): string {
  for (const [unit, size] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

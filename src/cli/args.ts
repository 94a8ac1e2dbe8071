// A small, strict argument parser: known flags only, `--flag value` or `--flag=value`.
import { GatewayError } from "../errors.ts";

export interface FlagSpec {
  /** Flags taking a value. */
  values?: readonly string[];
  /** Flags that may repeat (collected in order). */
  repeated?: readonly string[];
  /** Boolean flags. */
  booleans?: readonly string[];
}

export interface ParsedArgs {
  positionals: string[];
  flags: Record<string, string>;
  lists: Record<string, string[]>;
  booleans: Set<string>;
}

/** A flag's value as a whole number (`--max-errors 20`); undefined when the flag is absent. */
export function intFlag(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new GatewayError("USAGE", `\`--${name}\` needs a whole number, got \`${value}\``);
  return Number(value);
}

export function parseArgs(argv: readonly string[], spec: FlagSpec): ParsedArgs {
  const values = new Set(spec.values ?? []);
  const repeated = new Set(spec.repeated ?? []);
  const booleans = new Set(spec.booleans ?? []);
  const out: ParsedArgs = { positionals: [], flags: {}, lists: {}, booleans: new Set() };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith("--") || a === "--") {
      out.positionals.push(a);
      continue;
    }
    const eq = a.indexOf("=");
    const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    if (booleans.has(name)) {
      if (eq >= 0) throw new GatewayError("USAGE", `flag \`--${name}\` takes no value`);
      out.booleans.add(name);
      continue;
    }
    if (!values.has(name) && !repeated.has(name)) {
      const known = [...values, ...repeated, ...booleans].map((f) => `--${f}`).join(", ");
      throw new GatewayError("USAGE", `unknown flag \`--${name}\``, { known });
    }
    const value = eq >= 0 ? a.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new GatewayError("USAGE", `flag \`--${name}\` needs a value`);
    if (repeated.has(name)) (out.lists[name] ??= []).push(value);
    else out.flags[name] = value;
  }
  return out;
}

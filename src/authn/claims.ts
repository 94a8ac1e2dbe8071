// Claim mapping: a verified JWT payload becomes a typed principal of the policy's schema.
// This file only picks values; `coercePrincipal` (dsl/mod.ts) types them.
import { coercePrincipal, type Principal, type PrincipalSchema } from "../../dsl/mod.ts";
import type { JwtIssuerConfig } from "../config/mod.ts";
import { authnFailure, type AuthnFailure } from "./errors.ts";

/**
 * Reads a claim by path. A claim whose full name exists at the top level wins (namespaced claims such
 * as `https://example.com/roles` contain dots); otherwise the path is split on `.` and walked through
 * nested objects (`realm_access.roles`). Only own properties are read, so `__proto__` or
 * `constructor` never reach into the prototype chain.
 */
export function readClaim(payload: Readonly<Record<string, unknown>>, path: string): unknown {
  if (Object.hasOwn(payload, path)) return payload[path];
  let node: unknown = payload;
  for (const part of path.split(".")) {
    if (typeof node !== "object" || node === null || Array.isArray(node) || !Object.hasOwn(node, part)) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

type ClaimMapping = Pick<JwtIssuerConfig, "claims" | "constants">;

/**
 * Builds the principal of `schema` from a verified payload. For each schema attribute: a constant of
 * the issuer wins, else the claim named in `claims`, else the claim of the attribute's own name.
 * Mappings for attributes the schema does not declare are ignored (the policy decides which
 * attributes exist). A missing claim is `AUTHN_MISSING_CLAIM`, a claim of the wrong type
 * `AUTHN_BAD_CLAIM`; both messages name the attribute and the claim, never a token.
 *
 * @example
 * mapClaimsToPrincipal({ sub: "alice", realm_access: { roles: ["developer"] }, mfa: true },
 *   schema, { claims: { roles: "realm_access.roles" }, constants: { team: "core" } })
 */
export function mapClaimsToPrincipal(
  payload: Readonly<Record<string, unknown>>,
  schema: PrincipalSchema,
  mapping: ClaimMapping,
): { ok: true; principal: Principal } | AuthnFailure {
  const raw: Record<string, unknown> = {};
  for (const attribute of Object.keys(schema)) {
    if (Object.hasOwn(mapping.constants, attribute)) {
      raw[attribute] = mapping.constants[attribute];
      continue;
    }
    const path = Object.hasOwn(mapping.claims, attribute) ? mapping.claims[attribute]! : attribute;
    const value = readClaim(payload, path);
    if (value === undefined) {
      // An optional attribute (`team?: string`) may be absent; the policy tests it with `has`.
      if (schema[attribute]!.optional) continue;
      return authnFailure("AUTHN_MISSING_CLAIM", `token lacks claim \`${path}\` for principal attribute \`${attribute}\``);
    }
    raw[attribute] = value;
  }
  const typed = coercePrincipal(schema, raw);
  if (typed.ok) return typed;
  const path = Object.hasOwn(mapping.constants, typed.attribute)
    ? "constant"
    : `claim \`${Object.hasOwn(mapping.claims, typed.attribute) ? mapping.claims[typed.attribute] : typed.attribute}\``;
  const code = typed.code === "PRINCIPAL_MISSING_ATTRIBUTE" ? "AUTHN_MISSING_CLAIM" : "AUTHN_BAD_CLAIM";
  return authnFailure(code, `${typed.message} (from ${path})`);
}

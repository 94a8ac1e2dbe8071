// What the checker's passes share: the policy's declarations, what each pass declares for the
// passes after it (roles, duties, groups, conditions, rules), and the diagnostics they all collect.
// A pass reads only what earlier passes wrote (the order is `CHECK_PASSES` in dsl/check.ts).
import type { ConditionDecl, Declaration, GroupDecl, PolicyFile } from "../ast.ts";
import { diagnostic } from "../diagnostics.ts";
import {
  ruleId,
  type CheckedDuty, type CheckedExclusive, type CheckedForbid, type CheckedGrant, type CheckedSeparation, type TExpr,
} from "../typed-ast.ts";
import type { Diagnostic, Span, Type } from "../types.ts";

/** What a `group` holds: roles or duties, flattened through the groups it names. */
export interface GroupValue { kind: "role" | "duty"; members: string[] }

/** What an expression may read where it stands. */
export interface Scope {
  /** Route params that every duty the rule applies to has. */
  params: ReadonlySet<string>;
  paramHelp: readonly string[];
  /** The rule names a duty that has an error: its params are unknown, so param references go unchecked. */
  open?: boolean;
  /** Optional principal attributes known present here (`principal has team and …`). */
  present?: ReadonlySet<string>;
}

export type AttributeType = Type & { optional?: boolean };

export class CheckContext {
  readonly diagnostics: Diagnostic[] = [];
  readonly declarations: readonly Declaration[];

  // names: rule ids, roles, enums, upstreams
  readonly ruleIds = new Map<Declaration, string>();
  readonly enums = new Map<string, string[]>();
  readonly enumValueSpans = new Map<string, Span>();
  /** The declared roles (the `role` enum's values), once the roles pass has run. */
  roles: string[] = [];
  roleSet: ReadonlySet<string> = new Set();
  /** Roles declared `channel admin` may hold admin-channel duties; the others are operational. */
  readonly adminRoles = new Set<string>();
  /** Roles some rule names (grant, exclusive, a condition): a declared role no rule names is unused. */
  readonly mentionedRoles = new Set<string>();
  readonly upstreams: string[] = [];

  // types: the principal schema
  readonly schema: Record<string, AttributeType> = {};
  /**
   * Attributes declared with a type that has an error: that error is reported once, at the
   * declaration; their uses are not each reported again as unknown attributes.
   */
  readonly brokenAttributes = new Set<string>();

  // routes: the duties
  readonly duties: CheckedDuty[] = [];
  readonly dutyByName = new Map<string, CheckedDuty>();
  /** Declared duties that have an error: rules naming them get no follow-on "unknown duty" errors. */
  readonly brokenDuties = new Set<string>();

  // groups and named conditions
  readonly groupDecls = new Map<string, GroupDecl>();
  readonly groups = new Map<string, GroupValue | null>();
  readonly usedGroups = new Set<string>();
  readonly conditionDecls = new Map<string, ConditionDecl>();
  readonly conditionBodies = new Map<string, TExpr | null>();
  readonly conditionsBeingChecked = new Set<string>();
  readonly usedConditions = new Set<string>();

  // rules
  readonly exclusives: CheckedExclusive[] = [];
  readonly grants: CheckedGrant[] = [];
  readonly forbids: CheckedForbid[] = [];
  readonly separations: CheckedSeparation[] = [];

  readonly files: readonly PolicyFile[];
  /** "Now" for `until` checks, epoch ms. */
  readonly now: number;
  /** How long before an `until` date a warning is given, ms. */
  readonly untilWarningMs: number;

  constructor(files: readonly PolicyFile[], now: number, untilWarningMs: number) {
    this.files = files;
    this.now = now;
    this.untilWarningMs = untilWarningMs;
    this.declarations = files.flatMap((f) => f.declarations);
  }

  error(code: string, message: string, span: Span, help?: string): void {
    this.diagnostics.push(diagnostic(code, "error", message, span, help));
  }

  warn(code: string, message: string, span: Span, help?: string): void {
    this.diagnostics.push(diagnostic(code, "warning", message, span, help));
  }

  /** The declarations of one kind, in source order across the files. */
  declarationsOf<K extends Declaration["kind"]>(kind: K): Array<Extract<Declaration, { kind: K }>> {
    return this.declarations.filter((d): d is Extract<Declaration, { kind: K }> => d.kind === kind);
  }

  /** The stable id of a rule: `grant:approve-by-reviewer` with `@id`, else `grant:file:line:col`. */
  ruleIdOf(d: Declaration): string {
    return this.ruleIds.get(d) ?? ruleId(d.kind, d.span);
  }

  /** The names of the groups (without errors) that hold roles, or duties. */
  groupsOf(kind: "role" | "duty"): string[] {
    return [...this.groups.entries()].filter(([, g]) => g?.kind === kind).map(([n]) => n);
  }

  enumType(name: string): Type {
    return { kind: "enum", name, values: this.enums.get(name)! };
  }
}

/** A place in the source as messages cite it: `file:line:col`. */
export function at(span: Span): string {
  return `${span.file}:${span.line}:${span.col}`;
}

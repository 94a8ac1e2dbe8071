// The grammar of the `.duty` language, and nothing else: it produces a concrete syntax tree.
// Semantics live in build-ast.ts (CST → AST) and check.ts. Error recovery is on, so one run
// reports every syntax error it can resynchronise past.
import { CstParser, type CstNode, type IRecognitionException } from "chevrotain";
import * as T from "./lexer.ts";

/** Words that start a declaration only when `NAME =` follows: elsewhere they are names. */
export const NAMED_DECLARATIONS: ReadonlySet<string> = new Set(["condition", "group"]);

export class DutyParser extends CstParser {
  /**
   * `validate`: run Chevrotain's grammar checks (ambiguities, left recursion…). They cost tens of
   * milliseconds on every start and cannot fail on the fixed grammar, so the shared instance
   * skips them; `dsl/grammar.test.ts` builds a parser with them on.
   */
  constructor(options: { validate?: boolean } = {}) {
    super(T.allTokens, { recoveryEnabled: true, maxLookahead: 3, skipValidations: !options.validate });
    this.performSelfAnalysis();
  }

  policy = this.RULE("policy", () => {
    this.MANY(() => this.SUBRULE(this.declaration));
  });

  declaration = this.RULE("declaration", () => {
    this.OPTION(() => this.SUBRULE(this.annotation));
    this.OR([
      { ALT: () => this.SUBRULE(this.principalDecl) },
      { ALT: () => this.SUBRULE(this.roleDecl) },
      { ALT: () => this.SUBRULE(this.enumDecl) },
      { ALT: () => this.SUBRULE(this.upstreamDecl) },
      { ALT: () => this.SUBRULE(this.dutyDecl) },
      { ALT: () => this.SUBRULE(this.grantDecl) },
      { ALT: () => this.SUBRULE(this.forbidDecl) },
      { ALT: () => this.SUBRULE(this.exclusiveDecl) },
      { ALT: () => this.SUBRULE(this.separateDecl) },
      { GATE: () => NAMED_DECLARATIONS.has(this.LA(1).image) && this.LA(3).tokenType === T.Assign, ALT: () => this.SUBRULE(this.namedDecl) },
    ]);
  });

  // @id("approve-by-reviewer") — before a rule; which annotations exist is the checker's business.
  annotation = this.RULE("annotation", () => {
    this.CONSUME(T.At);
    this.CONSUME(T.Identifier, { LABEL: "name" });
    this.CONSUME(T.LParen);
    this.CONSUME(T.StringLiteral, { LABEL: "value" });
    this.CONSUME(T.RParen);
  });

  principalDecl = this.RULE("principalDecl", () => {
    this.CONSUME(T.Principal);
    this.CONSUME(T.LCurly);
    this.MANY(() => {
      this.SUBRULE(this.attrDecl);
      this.OPTION(() => this.CONSUME(T.Comma));
    });
    this.CONSUME(T.RCurly);
  });

  attrDecl = this.RULE("attrDecl", () => {
    this.CONSUME(T.Identifier);
    this.OPTION(() => this.CONSUME(T.Question));
    this.CONSUME(T.Colon);
    this.SUBRULE(this.typeExpr);
  });

  typeExpr = this.RULE("typeExpr", () => {
    this.OR([
      {
        ALT: () => {
          this.CONSUME(T.SetKw);
          this.CONSUME(T.Less);
          this.SUBRULE(this.typeExpr);
          this.CONSUME(T.Greater);
        },
      },
      { ALT: () => this.CONSUME(T.Identifier) },
      { ALT: () => this.CONSUME(T.Role) },
    ]);
  });

  identList = this.RULE("identList", () => {
    this.AT_LEAST_ONE_SEP({ SEP: T.Comma, DEF: () => this.CONSUME(T.Identifier) });
  });

  // role a, b [channel admin]
  roleDecl = this.RULE("roleDecl", () => {
    this.CONSUME(T.Role);
    this.SUBRULE(this.identList);
    this.OPTION(() => {
      this.CONSUME(T.Channel);
      this.CONSUME(T.Identifier, { LABEL: "channel" });
    });
  });

  enumDecl = this.RULE("enumDecl", () => {
    this.CONSUME(T.Enum);
    this.CONSUME(T.Identifier);
    this.CONSUME(T.LCurly);
    this.SUBRULE(this.identList);
    this.CONSUME(T.RCurly);
  });

  upstreamDecl = this.RULE("upstreamDecl", () => {
    this.CONSUME(T.Upstream);
    this.SUBRULE(this.identList);
  });

  dutyDecl = this.RULE("dutyDecl", () => {
    this.CONSUME(T.Duty);
    this.CONSUME1(T.Identifier, { LABEL: "name" });
    this.OR([
      { ALT: () => this.CONSUME2(T.Identifier, { LABEL: "method" }) },
      { ALT: () => this.CONSUME(T.MethodSet, { LABEL: "method" }) },
    ]);
    this.CONSUME(T.PathPattern);
    this.CONSUME(T.Arrow);
    this.CONSUME3(T.Identifier, { LABEL: "upstream" });
    this.OPTION(() => {
      this.CONSUME(T.Channel);
      this.CONSUME4(T.Identifier, { LABEL: "channel" });
    });
  });

  // grant ROLE, ROLE DUTY [when EXPR] [until DATE]
  grantDecl = this.RULE("grantDecl", () => {
    this.CONSUME(T.Grant);
    this.CONSUME1(T.Identifier, { LABEL: "roles" });
    this.MANY(() => {
      this.CONSUME(T.Comma);
      this.CONSUME2(T.Identifier, { LABEL: "roles" });
    });
    this.CONSUME3(T.Identifier, { LABEL: "duty" });
    this.OPTION(() => {
      this.CONSUME(T.When);
      this.SUBRULE(this.expr);
    });
    this.OPTION2(() => {
      this.CONSUME(T.Until);
      this.CONSUME(T.DateTimeLiteral);
    });
  });

  forbidDecl = this.RULE("forbidDecl", () => {
    this.CONSUME(T.Forbid);
    this.OR([{ ALT: () => this.CONSUME(T.Star) }, { ALT: () => this.SUBRULE(this.identList) }]);
    this.CONSUME(T.When);
    this.SUBRULE(this.expr);
    this.OPTION(() => {
      this.CONSUME(T.Until);
      this.CONSUME(T.DateTimeLiteral);
    });
  });

  exclusiveDecl = this.RULE("exclusiveDecl", () => {
    this.CONSUME(T.Exclusive);
    this.OPTION(() => {
      this.CONSUME(T.IntLiteral);
      this.CONSUME(T.Of);
    });
    this.SUBRULE(this.identList);
  });

  separateDecl = this.RULE("separateDecl", () => {
    this.CONSUME(T.Separate);
    this.SUBRULE(this.identList);
    this.CONSUME(T.By);
    this.AT_LEAST_ONE_SEP({ SEP: T.Comma, DEF: () => this.CONSUME(T.Identifier, { LABEL: "params" }) });
  });

  // condition same_tenant = principal.tenant == request.param.tenant
  // group tenant_writes = issue_invoice, approve_invoice
  namedDecl = this.RULE("namedDecl", () => {
    const keyword = this.CONSUME(T.Identifier, { LABEL: "keyword" });
    this.CONSUME2(T.Identifier, { LABEL: "name" });
    this.CONSUME(T.Assign);
    this.OR({
      IGNORE_AMBIGUITIES: true,
      DEF: [
        { GATE: () => keyword.image === "group", ALT: () => this.SUBRULE(this.identList) },
        { ALT: () => this.SUBRULE(this.expr) },
      ],
    });
  });

  expr = this.RULE("expr", () => {
    this.SUBRULE(this.andExpr, { LABEL: "operands" });
    this.MANY(() => {
      this.CONSUME(T.Or);
      this.SUBRULE2(this.andExpr, { LABEL: "operands" });
    });
  });

  andExpr = this.RULE("andExpr", () => {
    this.SUBRULE(this.notExpr, { LABEL: "operands" });
    this.MANY(() => {
      this.CONSUME(T.And);
      this.SUBRULE2(this.notExpr, { LABEL: "operands" });
    });
  });

  notExpr = this.RULE("notExpr", () => {
    this.OR([
      {
        ALT: () => {
          this.CONSUME(T.Not);
          this.SUBRULE(this.notExpr);
        },
      },
      { ALT: () => this.SUBRULE(this.cmpExpr) },
    ]);
  });

  cmpExpr = this.RULE("cmpExpr", () => {
    this.SUBRULE(this.addExpr, { LABEL: "lhs" });
    this.OPTION(() => {
      this.OR([
        { ALT: () => this.CONSUME(T.Eq, { LABEL: "op" }) },
        { ALT: () => this.CONSUME(T.NotEq, { LABEL: "op" }) },
        { ALT: () => this.CONSUME(T.LessEq, { LABEL: "op" }) },
        { ALT: () => this.CONSUME(T.GreaterEq, { LABEL: "op" }) },
        { ALT: () => this.CONSUME(T.Less, { LABEL: "op" }) },
        { ALT: () => this.CONSUME(T.Greater, { LABEL: "op" }) },
        { ALT: () => this.CONSUME(T.In, { LABEL: "op" }) },
        { ALT: () => this.CONSUME(T.Has, { LABEL: "op" }) },
        { ALT: () => this.CONSUME(T.StartsWith, { LABEL: "op" }) },
        { ALT: () => this.CONSUME(T.EndsWith, { LABEL: "op" }) },
        { ALT: () => this.CONSUME(T.Matches, { LABEL: "op" }) },
      ]);
      this.SUBRULE2(this.addExpr, { LABEL: "rhs" });
    });
  });

  addExpr = this.RULE("addExpr", () => {
    this.SUBRULE(this.primary, { LABEL: "operands" });
    this.MANY(() => {
      this.OR([
        { ALT: () => this.CONSUME(T.Plus, { LABEL: "ops" }) },
        { ALT: () => this.CONSUME(T.Minus, { LABEL: "ops" }) },
      ]);
      this.SUBRULE2(this.primary, { LABEL: "operands" });
    });
  });

  primary = this.RULE("primary", () => {
    this.OR([
      { ALT: () => this.CONSUME(T.StringLiteral) },
      { ALT: () => this.CONSUME(T.IntLiteral) },
      { ALT: () => this.CONSUME(T.DurationLiteral) },
      { ALT: () => this.CONSUME(T.DateTimeLiteral) },
      { ALT: () => this.CONSUME(T.CidrLiteral) },
      { ALT: () => this.CONSUME(T.IpLiteral) },
      { ALT: () => this.CONSUME(T.True) },
      { ALT: () => this.CONSUME(T.False) },
      { ALT: () => this.SUBRULE(this.setLiteral) },
      // Unary minus binds tighter than `+ -`: `a - -1h` is `a - (-1h)`.
      {
        ALT: () => {
          this.CONSUME(T.Minus, { LABEL: "neg" });
          this.SUBRULE(this.primary, { LABEL: "negated" });
        },
      },
      {
        ALT: () => {
          this.CONSUME(T.LParen);
          this.SUBRULE(this.expr);
          this.CONSUME(T.RParen);
        },
      },
      { ALT: () => this.SUBRULE(this.reference) },
    ]);
  });

  setLiteral = this.RULE("setLiteral", () => {
    this.CONSUME(T.LBracket);
    this.MANY_SEP({ SEP: T.Comma, DEF: () => this.SUBRULE(this.primary, { LABEL: "items" }) });
    this.CONSUME(T.RBracket);
  });

  // principal.mfa · request.header["x-freeze"] · request.param.change · reviewer · ip("::1") ·
  // lower(request.path)
  reference = this.RULE("reference", () => {
    this.OR([
      { ALT: () => this.CONSUME(T.Principal, { LABEL: "head" }) },
      { ALT: () => this.CONSUME(T.Identifier, { LABEL: "head" }) },
    ]);
    this.OPTION(() => {
      this.CONSUME(T.LParen);
      this.SUBRULE(this.expr, { LABEL: "callArg" });
      this.CONSUME(T.RParen);
    });
    this.MANY(() => {
      this.OR2([
        {
          ALT: () => {
            this.CONSUME(T.Dot);
            this.CONSUME2(T.Identifier, { LABEL: "member" });
          },
        },
        {
          ALT: () => {
            this.CONSUME(T.LBracket);
            this.CONSUME2(T.StringLiteral, { LABEL: "member" });
            this.CONSUME(T.RBracket);
          },
        },
      ]);
    });
  });
}

/** One parser instance, reused: Chevrotain's self-analysis is costly; `input` resets its state. */
export const dutyParser = new DutyParser();

export interface ParseOutput {
  cst: CstNode;
  errors: IRecognitionException[];
}

/** Parses tokens of one file into a CST, collecting every syntax error. */
export function parseTokens(tokens: import("chevrotain").IToken[]): ParseOutput {
  dutyParser.input = tokens;
  const cst = dutyParser.policy();
  return { cst, errors: [...dutyParser.errors] };
}

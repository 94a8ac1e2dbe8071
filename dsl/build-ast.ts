// CST → AST: the one place that knows the CST's shape. A node left incomplete by error
// recovery is dropped here (its syntax error is already reported), never guessed at.
import type { CstElement, CstNode, IToken } from "chevrotain";
import type { BinaryOp, Declaration, Expr, Name, PolicyFile, TypeRef } from "./ast.ts";
import type { Span } from "./types.ts";

class Incomplete extends Error {}

export function tokenSpan(file: string, tok: IToken): Span {
  return {
    file,
    line: tok.startLine ?? 1,
    col: tok.startColumn ?? 1,
    endLine: tok.endLine ?? tok.startLine ?? 1,
    endCol: (tok.endColumn ?? tok.startColumn ?? 1) + 1,
    start: tok.startOffset,
    end: (tok.endOffset ?? tok.startOffset) + 1,
  };
}

export function joinSpans(a: Span, b: Span): Span {
  return { file: a.file, line: a.line, col: a.col, endLine: b.endLine, endCol: b.endCol, start: a.start, end: b.end };
}

function isToken(e: CstElement): e is IToken {
  return (e as IToken).image !== undefined;
}

/** Builds the AST of one file from its CST. */
export function buildAst(file: string, cst: CstNode): PolicyFile {
  const declarations: Declaration[] = [];
  const tokens = (node: CstNode, key: string): IToken[] => {
    const list = (node.children[key] ?? []).filter(isToken);
    for (const t of list) if (t.isInsertedInRecovery || Number.isNaN(t.startOffset)) throw new Incomplete();
    return list;
  };
  const token = (node: CstNode, key: string): IToken => {
    const t = tokens(node, key)[0];
    if (!t) throw new Incomplete();
    return t;
  };
  const nodes = (node: CstNode, key: string): CstNode[] => (node.children[key] ?? []).filter((e): e is CstNode => !isToken(e));
  const child = (node: CstNode, key: string): CstNode => {
    const n = nodes(node, key)[0];
    if (!n || n.recoveredNode) throw new Incomplete();
    return n;
  };
  const span = (tok: IToken) => tokenSpan(file, tok);
  const name = (tok: IToken): Name => ({ text: tok.image, span: span(tok) });
  const names = (listNode: CstNode) => tokens(listNode, "Identifier").map(name);
  const firstSpan = (node: CstNode): Span => {
    let first: IToken | null = null;
    let last: IToken | null = null;
    const walk = (n: CstNode) => {
      for (const list of Object.values(n.children)) {
        for (const e of list) {
          if (isToken(e)) {
            if (e.isInsertedInRecovery || Number.isNaN(e.startOffset)) continue;
            if (!first || e.startOffset < first.startOffset) first = e;
            if (!last || e.startOffset > last.startOffset) last = e;
          } else walk(e);
        }
      }
    };
    walk(node);
    if (!first || !last) throw new Incomplete();
    return joinSpans(span(first), span(last));
  };

  const typeRef = (node: CstNode): TypeRef => {
    if (node.children.SetKw) {
      const of = typeRef(child(node, "typeExpr"));
      return { kind: "set", of, span: firstSpan(node) };
    }
    const tok = (node.children.Identifier?.[0] ?? node.children.Role?.[0]) as IToken | undefined;
    if (!tok || tok.isInsertedInRecovery) throw new Incomplete();
    return { kind: "named", name: name(tok), span: span(tok) };
  };

  const unquote = (image: string) =>
    image.slice(1, -1).replace(/\\(["\\nt])/g, (_, c: string) => (c === "n" ? "\n" : c === "t" ? "\t" : c));

  const expr = (node: CstNode): Expr => {
    switch (node.name) {
      case "expr":
      case "andExpr": {
        const op: BinaryOp = node.name === "expr" ? "or" : "and";
        const operands = nodes(node, "operands").map((n) => {
          if (n.recoveredNode) throw new Incomplete();
          return expr(n);
        });
        const opTokens = tokens(node, node.name === "expr" ? "Or" : "And");
        if (operands.length === 0) throw new Incomplete();
        let acc = operands[0]!;
        for (let i = 1; i < operands.length; i++) {
          const right = operands[i]!;
          acc = { kind: "binary", op, opSpan: span(opTokens[i - 1]!), left: acc, right, span: joinSpans(acc.span, right.span) };
        }
        return acc;
      }
      case "notExpr": {
        if (node.children.Not) {
          const operand = expr(child(node, "notExpr"));
          return { kind: "not", operand, span: joinSpans(span(token(node, "Not")), operand.span) };
        }
        return expr(child(node, "cmpExpr"));
      }
      case "cmpExpr": {
        const lhs = expr(child(node, "lhs"));
        if (!node.children.op) return lhs;
        const opTok = token(node, "op");
        const rhs = expr(child(node, "rhs"));
        return { kind: "binary", op: opTok.image as BinaryOp, opSpan: span(opTok), left: lhs, right: rhs, span: joinSpans(lhs.span, rhs.span) };
      }
      case "addExpr": {
        const operands = nodes(node, "operands").map((n) => {
          if (n.recoveredNode) throw new Incomplete();
          return expr(n);
        });
        const ops = tokens(node, "ops");
        let acc = operands[0];
        if (!acc) throw new Incomplete();
        for (let i = 1; i < operands.length; i++) {
          const right = operands[i]!;
          const opTok = ops[i - 1]!;
          acc = { kind: "binary", op: opTok.image as BinaryOp, opSpan: span(opTok), left: acc, right, span: joinSpans(acc.span, right.span) };
        }
        return acc;
      }
      case "primary": {
        const c = node.children;
        const lit = (key: string) => token(node, key);
        if (c.StringLiteral) { const t = lit("StringLiteral"); return { kind: "string", value: unquote(t.image), span: span(t) }; }
        if (c.IntLiteral) { const t = lit("IntLiteral"); return { kind: "int", value: Number(t.image), span: span(t) }; }
        if (c.DurationLiteral) { const t = lit("DurationLiteral"); return { kind: "duration", text: t.image, span: span(t) }; }
        if (c.DateTimeLiteral) { const t = lit("DateTimeLiteral"); return { kind: "datetime", text: t.image, span: span(t) }; }
        if (c.CidrLiteral) { const t = lit("CidrLiteral"); return { kind: "cidr", text: t.image, span: span(t) }; }
        if (c.IpLiteral) { const t = lit("IpLiteral"); return { kind: "ip", text: t.image, span: span(t) }; }
        if (c.True) return { kind: "bool", value: true, span: span(lit("True")) };
        if (c.False) return { kind: "bool", value: false, span: span(lit("False")) };
        if (c.neg) {
          const operand = expr(child(node, "negated"));
          return { kind: "neg", operand, span: joinSpans(span(token(node, "neg")), operand.span) };
        }
        if (c.setLiteral) {
          const s = child(node, "setLiteral");
          const items = nodes(s, "items").map((n) => {
            if (n.recoveredNode) throw new Incomplete();
            return expr(n);
          });
          return { kind: "set", items, span: joinSpans(span(token(s, "LBracket")), span(token(s, "RBracket"))) };
        }
        if (c.LParen) {
          const inner = expr(child(node, "expr"));
          return { ...inner, span: joinSpans(span(token(node, "LParen")), span(token(node, "RParen"))) };
        }
        return expr(child(node, "reference"));
      }
      case "reference": {
        const headTok = token(node, "head");
        const head = name(headTok);
        if (node.children.callArg) {
          const argNode = child(node, "callArg");
          if (node.children.member) throw new Incomplete();
          const arg = expr(argNode);
          const s = joinSpans(head.span, span(token(node, "RParen")));
          // A string literal argument is a typed literal (`ip("::1")`); the checker knows the rest.
          return arg.kind === "string" ? { kind: "call", fn: head, arg: arg.value, span: s } : { kind: "apply", fn: head, arg, span: s };
        }
        const members = tokens(node, "member")
          .sort((a, b) => a.startOffset - b.startOffset)
          .map((t) => ({ name: t.tokenType.name === "StringLiteral" ? unquote(t.image) : t.image, quoted: t.tokenType.name === "StringLiteral", span: span(t) }));
        const end = members.length ? firstSpan(node) : head.span;
        return { kind: "ref", head, members, span: joinSpans(head.span, end) };
      }
      default:
        throw new Incomplete();
    }
  };

  const declaration = (node: CstNode): Declaration => {
    const decl = declarationBody(node);
    const a = nodes(node, "annotation")[0];
    if (!a) return decl;
    if (a.recoveredNode) throw new Incomplete();
    const nameTok = token(a, "name");
    const valueTok = token(a, "value");
    const value: Name = { text: unquote(valueTok.image), span: span(valueTok) };
    return { ...decl, annotation: { name: name(nameTok), value, span: joinSpans(span(token(a, "At")), span(token(a, "RParen"))) } };
  };

  const declarationBody = (node: CstNode): Declaration => {
    const kindNode = Object.entries(node.children).find(([key]) => key !== "annotation")?.[1][0] as CstNode | undefined;
    if (!kindNode || kindNode.recoveredNode) throw new Incomplete();
    const s = firstSpan(kindNode);
    switch (kindNode.name) {
      case "principalDecl":
        return {
          kind: "principal",
          attrs: nodes(kindNode, "attrDecl").map((a) => {
            if (a.recoveredNode) throw new Incomplete();
            return { name: name(token(a, "Identifier")), type: typeRef(child(a, "typeExpr")), optional: a.children.Question !== undefined };
          }),
          span: s,
        };
      case "roleDecl":
        return { kind: "role", names: names(child(kindNode, "identList")), channel: kindNode.children.channel ? name(token(kindNode, "channel")) : null, span: s };
      case "enumDecl":
        return { kind: "enum", name: name(token(kindNode, "Identifier")), values: names(child(kindNode, "identList")), span: s };
      case "upstreamDecl":
        return { kind: "upstream", names: names(child(kindNode, "identList")), span: s };
      case "dutyDecl":
        return {
          kind: "duty",
          name: name(token(kindNode, "name")),
          method: name(token(kindNode, "method")),
          pattern: name(token(kindNode, "PathPattern")),
          upstream: name(token(kindNode, "upstream")),
          channel: kindNode.children.channel ? name(token(kindNode, "channel")) : null,
          span: s,
        };
      case "grantDecl":
        return {
          kind: "grant",
          roles: tokens(kindNode, "roles").map(name),
          duty: name(token(kindNode, "duty")),
          when: kindNode.children.expr ? expr(child(kindNode, "expr")) : null,
          until: kindNode.children.DateTimeLiteral ? name(token(kindNode, "DateTimeLiteral")) : null,
          span: s,
        };
      case "forbidDecl":
        return {
          kind: "forbid",
          duties: kindNode.children.Star ? null : names(child(kindNode, "identList")),
          when: expr(child(kindNode, "expr")),
          until: kindNode.children.DateTimeLiteral ? name(token(kindNode, "DateTimeLiteral")) : null,
          span: s,
        };
      case "exclusiveDecl": {
        const n = kindNode.children.IntLiteral ? token(kindNode, "IntLiteral") : null;
        return {
          kind: "exclusive",
          atLeast: n ? { value: Number(n.image), span: span(n) } : null,
          roles: names(child(kindNode, "identList")),
          span: s,
        };
      }
      case "separateDecl":
        return { kind: "separate", duties: names(child(kindNode, "identList")), params: tokens(kindNode, "params").map(name), span: s };
      case "namedDecl":
        return token(kindNode, "keyword").image === "group"
          ? { kind: "group", name: name(token(kindNode, "name")), members: names(child(kindNode, "identList")), span: s }
          : { kind: "condition", name: name(token(kindNode, "name")), body: expr(child(kindNode, "expr")), span: s };
      default:
        throw new Incomplete();
    }
  };

  for (const d of nodes(cst, "declaration")) {
    if (d.recoveredNode) continue;
    try {
      declarations.push(declaration(d));
    } catch (e) {
      if (!(e instanceof Incomplete)) throw e;
    }
  }
  return { file, declarations };
}

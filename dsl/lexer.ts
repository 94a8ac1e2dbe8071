// Tokens of the `.duty` language. Keywords are declared with `longer_alt: Identifier` so that
// `grantee` lexes as one identifier; literal tokens are ordered most specific first
// (a date before a CIDR before an IP before a duration before an integer).
import { createToken, Lexer, type TokenType } from "chevrotain";

export const WhiteSpace = createToken({ name: "WhiteSpace", pattern: /[ \t\r\n]+/, group: Lexer.SKIPPED });
export const Comment = createToken({ name: "Comment", pattern: /#[^\n]*/, group: Lexer.SKIPPED });

export const Identifier = createToken({ name: "Identifier", pattern: /[A-Za-z_][A-Za-z0-9_]*/ });
/** Methods of one duty, joined without spaces: `GET|HEAD`. One token, so that `||` stays foreign. */
export const MethodSet = createToken({ name: "MethodSet", pattern: /[A-Za-z]+(?:\|[A-Za-z]+)+/ });

const keyword = (word: string) => createToken({ name: word[0]!.toUpperCase() + word.slice(1).replace(/_(\w)/g, (_, c: string) => c.toUpperCase()), pattern: new RegExp(word), longer_alt: Identifier });

export const Principal = keyword("principal");
export const Role = keyword("role");
export const Enum = keyword("enum");
export const Upstream = keyword("upstream");
export const Duty = keyword("duty");
export const Grant = keyword("grant");
export const Forbid = keyword("forbid");
export const Exclusive = keyword("exclusive");
export const Separate = keyword("separate");
export const By = keyword("by");
export const Of = keyword("of");
export const When = keyword("when");
export const Until = keyword("until");
export const Channel = keyword("channel");
export const And = keyword("and");
export const Or = keyword("or");
export const Not = keyword("not");
export const In = keyword("in");
export const Has = keyword("has");
export const StartsWith = keyword("starts_with");
export const EndsWith = keyword("ends_with");
export const Matches = keyword("matches");
export const True = keyword("true");
export const False = keyword("false");
export const SetKw = createToken({ name: "SetKw", pattern: /set/, longer_alt: Identifier });

// A string token never fails once it has started at `"`: an unterminated string (no closing quote
// before the line ends) or an unknown escape is still one token, reported by the loader. A pattern
// that could fail after scanning to the end of the line made the lexer retry it at every later
// `"`, which is quadratic (a 128 KiB line of `\"` took 14 s).
export const StringLiteral = createToken({ name: "StringLiteral", pattern: /"(?:[^"\\\n]|\\.)*"?/ });
/** Single quotes are no strings; lexed whole (and never failing, as strings) so the loader says so once. */
export const SingleQuotedString = createToken({ name: "SingleQuotedString", pattern: /'(?:[^'\\\n]|\\.)*'?/ });
// The UTC offset is optional here so that `2026-12-31T10:00` is one token the checker can name
// ("has no UTC offset"), not a date followed by a stray `T10`.
export const DateTimeLiteral = createToken({
  name: "DateTimeLiteral",
  pattern: /\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?/,
});
export const CidrLiteral = createToken({ name: "CidrLiteral", pattern: /\d{1,3}(?:\.\d{1,3}){3}\/\d{1,2}/ });
export const IpLiteral = createToken({ name: "IpLiteral", pattern: /\d{1,3}(?:\.\d{1,3}){3}/ });
export const DurationLiteral = createToken({ name: "DurationLiteral", pattern: /(?:\d+(?:ms|s|m|h|d))+(?![A-Za-z0-9_])/ });
export const IntLiteral = createToken({ name: "IntLiteral", pattern: /\d+/ });
/** A route pattern: `/changes/:change/approve`, `/logs/*`. Only valid where a duty expects it. */
export const PathPattern = createToken({ name: "PathPattern", pattern: /\/[^\s#]*/ });

export const Arrow = createToken({ name: "Arrow", pattern: /->/ });
export const Eq = createToken({ name: "Eq", pattern: /==/ });
/** Only after `condition NAME` and `group NAME`; the loader reports any other `=` (`==` compares).
 * `condition` and `group` are no keywords: before `NAME =` they start a declaration, elsewhere
 * they stay names (a principal attribute `group`, a role `condition`), as before they existed. */
export const Assign = createToken({ name: "Assign", pattern: /=/ });
export const NotEq = createToken({ name: "NotEq", pattern: /!=/ });
export const LessEq = createToken({ name: "LessEq", pattern: /<=/ });
export const GreaterEq = createToken({ name: "GreaterEq", pattern: />=/ });
export const Less = createToken({ name: "Less", pattern: /</ });
export const Greater = createToken({ name: "Greater", pattern: />/ });
export const Plus = createToken({ name: "Plus", pattern: /\+/ });
export const Minus = createToken({ name: "Minus", pattern: /-/ });
export const Star = createToken({ name: "Star", pattern: /\*/ });
export const LCurly = createToken({ name: "LCurly", pattern: /\{/ });
export const RCurly = createToken({ name: "RCurly", pattern: /\}/ });
export const LBracket = createToken({ name: "LBracket", pattern: /\[/ });
export const RBracket = createToken({ name: "RBracket", pattern: /\]/ });
export const LParen = createToken({ name: "LParen", pattern: /\(/ });
export const RParen = createToken({ name: "RParen", pattern: /\)/ });
export const Comma = createToken({ name: "Comma", pattern: /,/ });
export const Colon = createToken({ name: "Colon", pattern: /:/ });
export const Dot = createToken({ name: "Dot", pattern: /\./ });
/** Marks an optional principal attribute: `team?: string`. */
export const Question = createToken({ name: "Question", pattern: /\?/ });
/** Starts an annotation: `@id("approve-by-reviewer")`. */
export const At = createToken({ name: "At", pattern: /@/ });

export const allTokens: TokenType[] = [
  WhiteSpace, Comment,
  StringLiteral, SingleQuotedString, DateTimeLiteral, CidrLiteral, IpLiteral, DurationLiteral, IntLiteral, PathPattern,
  Arrow, Eq, Assign, NotEq, LessEq, GreaterEq, Less, Greater, Plus, Minus, Star,
  LCurly, RCurly, LBracket, RBracket, LParen, RParen, Comma, Colon, Dot, At, Question,
  MethodSet,
  Principal, Role, Enum, Upstream, Duty, Grant, Forbid, Exclusive, Separate, By, Of, When, Until, Channel,
  And, Or, Not, In, Has, StartsWith, EndsWith, Matches, True, False, SetKw,
  Identifier,
];

/**
 * The lexer's options. Chevrotain's definition checks cost tens of milliseconds on every start of
 * the gateway and never fail on the one fixed token list, so the shared instance skips them;
 * `dsl/grammar.test.ts` builds a lexer with them on and requires no definition error.
 */
export const LEXER_OPTIONS = { positionTracking: "full", ensureOptimizations: false } as const;

/** One lexer instance, reused (Chevrotain lexers are stateless between calls). */
export const dutyLexer = new Lexer(allTokens, { ...LEXER_OPTIONS, skipValidations: true });

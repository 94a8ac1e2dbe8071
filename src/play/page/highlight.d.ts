// Types of highlight.js (plain JavaScript, served to the playground page as it is).
export interface GrammarRule { name?: string; match?: string; captures?: Record<string, { name: string }> }
export interface Grammar { scopeName: string; patterns: GrammarRule[] }
export interface CompiledGrammar { scopeName: string; rules: unknown[] }
export interface LineToken { start: number; end: number; scopes: string[] }
export function compileGrammar(grammar: Grammar): CompiledGrammar;
export function tokenizeLine(compiled: CompiledGrammar, line: string): LineToken[];
export function scopeClass(scopes: readonly string[]): string;
export function highlightHtml(compiled: CompiledGrammar, text: string): string;

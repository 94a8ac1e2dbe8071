// "Did you mean" for config keys and enum values: the same fuzzy match the policy checker uses
// (optimal string alignment distance within a third of the word's length, case-insensitive).
export { closestMatch, editDistance } from "../../dsl/mod.ts";

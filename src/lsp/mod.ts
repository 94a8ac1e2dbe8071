// `gateway lsp`: the language server for editors. Other folders import it only from here.
export { startLanguageServer } from "./server.ts";

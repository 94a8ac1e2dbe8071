import pkg from "../package.json" with { type: "json" };

declare const DUTYGATE_COMMIT: string | undefined;

/** The product version, from package.json. */
export const VERSION: string = pkg.version;
/** The git commit the binary was built from (set by `npm run build`), or `source` when run from source. */
export const COMMIT: string = typeof DUTYGATE_COMMIT === "string" ? DUTYGATE_COMMIT : "source";

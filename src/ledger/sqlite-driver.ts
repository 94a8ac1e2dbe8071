// The smallest common face of bun:sqlite (under Bun) and node:sqlite (under Deno), so the ledger's
// SQL is written once. Each runtime loads only its own driver (dynamic import).

/** A bindable SQLite value as the ledger uses it. */
export type SqlValue = string | number | null;
export type SqlRow = Record<string, SqlValue>;

export interface SqlStatement {
  run(...params: SqlValue[]): { changes: number };
  all(...params: SqlValue[]): SqlRow[];
  /** The first row, or undefined. */
  get(...params: SqlValue[]): SqlRow | undefined;
}

export interface SqlDatabase {
  /** Runs one statement without results (pragmas, DDL). */
  exec(sql: string): void;
  prepare(sql: string): SqlStatement;
  close(): void;
  /** Which driver is underneath, for benchmarks and errors. */
  readonly driver: "bun:sqlite" | "node:sqlite";
}

/** Opens (creating when missing) the SQLite file at `path` with the runtime's own driver. */
export async function openSqlDatabase(path: string): Promise<SqlDatabase> {
  // Without naming `Bun` or typing calls by bun:sqlite's generics: Deno type-checks this module too
  // (the checkpoint thread's entry imports it), without Bun's typings.
  if ((globalThis as { Bun?: unknown }).Bun !== undefined) {
    const { Database } = await import("bun:sqlite");
    const db = new Database(path, { create: true, readwrite: true });
    return {
      driver: "bun:sqlite",
      exec: (sql) => { db.run(sql); },
      prepare: (sql) => {
        const statement = db.prepare(sql);
        return {
          run: (...params) => ({ changes: statement.run(...params).changes }),
          all: (...params) => statement.all(...params) as SqlRow[],
          get: (...params) => (statement.get(...params) ?? undefined) as SqlRow | undefined,
        };
      },
      close: () => db.close(),
    };
  }
  // A computed specifier keeps type-checking and bundling from reaching for a module Bun does not need.
  const specifier = "node:sqlite";
  const { DatabaseSync } = (await import(specifier)) as { DatabaseSync: new (path: string) => NodeSqliteDatabase };
  const db = new DatabaseSync(path);
  return {
    driver: "node:sqlite",
    exec: (sql) => db.exec(sql),
    prepare: (sql) => {
      const statement = db.prepare(sql);
      return {
        run: (...params) => ({ changes: Number(statement.run(...params).changes) }),
        all: (...params) => statement.all(...params),
        get: (...params) => statement.get(...params),
      };
    },
    close: () => db.close(),
  };
}

/** The part of node:sqlite's DatabaseSync the ledger uses (Node/Deno typings are not installed). */
interface NodeSqliteDatabase {
  exec(sql: string): void;
  prepare(sql: string): {
    run(...params: SqlValue[]): { changes: number | bigint };
    all(...params: SqlValue[]): SqlRow[];
    get(...params: SqlValue[]): SqlRow | undefined;
  };
  close(): void;
}

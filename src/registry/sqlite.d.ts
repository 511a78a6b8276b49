// The slice of better-sqlite3 v12's API that the registry uses (the package ships no types
// and @types/better-sqlite3 is not a dependency).
declare module "better-sqlite3" {
  interface RunResult {
    changes: number;
    lastInsertRowid: number | bigint;
  }
  interface Statement<Row = unknown> {
    run(...params: unknown[]): RunResult;
    get(...params: unknown[]): Row | undefined;
    all(...params: unknown[]): Row[];
  }
  interface Database {
    prepare<Row = unknown>(sql: string): Statement<Row>;
    exec(sql: string): this;
    pragma(source: string, options?: { simple?: boolean }): unknown;
    /** Calling the result runs fn in BEGIN (DEFERRED); `.immediate(...)` takes the write lock at BEGIN. Nested calls are savepoints. */
    transaction<A extends unknown[], R>(fn: (...args: A) => R): ((...args: A) => R) & { immediate(...args: A): R; deferred(...args: A): R; exclusive(...args: A): R };
    close(): this;
    readonly open: boolean;
    readonly inTransaction: boolean;
    readonly name: string;
  }
  interface Options {
    readonly?: boolean;
    fileMustExist?: boolean;
    timeout?: number;
  }
  interface DatabaseConstructor {
    new (filename: string, options?: Options): Database;
  }
  const Database: DatabaseConstructor;
  export default Database;
  export type { Database, Statement, RunResult, Options };
}

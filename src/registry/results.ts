/** Evaluations (metrics of a model on a task) and audits (named checks with pass/fail and a result). */
import { type Database, now } from "./db.js";

export interface Evaluation { id: number; tenant: string; model: string; task: string; metrics: Record<string, number>; created: number }
export interface Audit { id: number; tenant: string; model: string; name: string; passed: boolean; result: Record<string, unknown>; created: number }

export class ResultStore {
  constructor(private readonly db: Database) {}

  addEvaluation(tenant: string, model: string, task: string, metrics: Record<string, number>): void {
    this.db.prepare("INSERT INTO evaluations (tenant, model, task, metrics, created) VALUES (?, ?, ?, ?, ?)").run(tenant, model, task, JSON.stringify(metrics), now());
  }

  evaluations(tenant: string): Evaluation[] {
    return this.db.prepare<Omit<Evaluation, "metrics"> & { metrics: string }>("SELECT * FROM evaluations WHERE tenant = ? ORDER BY id DESC").all(tenant)
      .map((r) => ({ ...r, metrics: JSON.parse(r.metrics) as Record<string, number> }));
  }

  addAudit(tenant: string, model: string, name: string, passed: boolean, result: Record<string, unknown>): void {
    this.db.prepare("INSERT INTO audits (tenant, model, name, passed, result, created) VALUES (?, ?, ?, ?, ?, ?)").run(tenant, model, name, passed ? 1 : 0, JSON.stringify(result), now());
  }

  audits(tenant: string): Audit[] {
    return this.db.prepare<Omit<Audit, "result" | "passed"> & { result: string; passed: number }>("SELECT * FROM audits WHERE tenant = ? ORDER BY id DESC").all(tenant)
      .map((r) => ({ ...r, passed: r.passed !== 0, result: JSON.parse(r.result) as Record<string, unknown> }));
  }
}

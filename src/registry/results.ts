/** Evaluations (metrics of a model on a task) and audits (named checks with pass/fail and a result). */
import { now } from "./db.js";
import type { Store } from "./store.js";

export interface Evaluation { id: number; tenant: string; model: string; task: string; metrics: Record<string, number>; created: number }
export interface Audit { id: number; tenant: string; model: string; name: string; passed: boolean; result: Record<string, unknown>; created: number }

export class ResultStore {
  constructor(private readonly db: Store) {}

  async addEvaluation(tenant: string, model: string, task: string, metrics: Record<string, number>): Promise<void> {
    await this.db.run("INSERT INTO evaluations (tenant, model, task, metrics, created) VALUES (?, ?, ?, ?, ?)", [tenant, model, task, JSON.stringify(metrics), now()]);
  }

  async evaluations(tenant: string): Promise<Evaluation[]> {
    return (await this.db.all<Omit<Evaluation, "metrics"> & { metrics: string }>("SELECT * FROM evaluations WHERE tenant = ? ORDER BY id DESC", [tenant]))
      .map((r) => ({ ...r, metrics: JSON.parse(r.metrics) as Record<string, number> }));
  }

  async addAudit(tenant: string, model: string, name: string, passed: boolean, result: Record<string, unknown>): Promise<void> {
    await this.db.run("INSERT INTO audits (tenant, model, name, passed, result, created) VALUES (?, ?, ?, ?, ?, ?)", [tenant, model, name, passed ? 1 : 0, JSON.stringify(result), now()]);
  }

  async audits(tenant: string): Promise<Audit[]> {
    return (await this.db.all<Omit<Audit, "result" | "passed"> & { result: string; passed: number }>("SELECT * FROM audits WHERE tenant = ? ORDER BY id DESC", [tenant]))
      .map((r) => ({ ...r, passed: r.passed !== 0, result: JSON.parse(r.result) as Record<string, unknown> }));
  }
}

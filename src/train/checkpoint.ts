/**
 * Training checkpoints: <dir>/checkpoints/step-000123/ holding model.safetensors,
 * optimizer.safetensors (AdamW moments) and state.json (step, tokens, RNG states, schedule).
 * A checkpoint is written into a temporary folder, every file fsynced, then renamed into
 * place and the parent fsynced, so the newest complete checkpoint is never corrupt, even
 * after `kill -9`. state.json is written last and marks a checkpoint as complete.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { decodeSafetensors, encodeSafetensors, f32, toFloat32, type RawTensor } from "../io/safetensors.js";
import type { Module } from "../nn/module.js";
import type { AdamW } from "../optim/adamw.js";

export interface CheckpointState {
  version: 1;
  step: number;
  tokens: number;
  elapsedSeconds: number;
  totalSteps: number;
  dataRng: number[];
  modelRng: number[];
  optimizer: { step: number; lr: number };
  config: unknown;
  extra?: Record<string, unknown>;
}

function writeSynced(path: string, data: string | Uint8Array): void {
  writeFileSync(path, data);
  const fd = openSync(path, "r");
  fsyncSync(fd);
  closeSync(fd);
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  fsyncSync(fd);
  closeSync(fd);
}

const NAME = /^step-(\d{9})$/;

export function checkpointRoot(outDir: string): string {
  return join(outDir, "checkpoints");
}

/** Complete checkpoints, oldest first. */
export function listCheckpoints(outDir: string): { step: number; path: string }[] {
  const root = checkpointRoot(outDir);
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .map((name) => ({ m: NAME.exec(name), path: join(root, name) }))
    .filter((e) => e.m !== null && existsSync(join(e.path, "state.json")))
    .map((e) => ({ step: Number(e.m![1]), path: e.path }))
    .sort((a, b) => a.step - b.step);
}

export function saveCheckpoint(outDir: string, model: Module, optimizer: AdamW, state: CheckpointState, keepLast: number): string {
  const root = checkpointRoot(outDir);
  mkdirSync(root, { recursive: true });
  const final = join(root, `step-${String(state.step).padStart(9, "0")}`);
  const tmp = join(root, `.tmp-${process.pid}-${state.step}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    const weights: Record<string, RawTensor> = {};
    const moments: Record<string, RawTensor> = {};
    for (const [name, p] of model.namedParameters()) {
      const { m, v } = optimizer.momentsOf(p);
      weights[name] = f32([...p.shape], p.toArray() as Float32Array);
      moments[`m.${name}`] = f32([...p.shape], m);
      moments[`v.${name}`] = f32([...p.shape], v);
    }
    writeSynced(join(tmp, "model.safetensors"), encodeSafetensors(weights, { format: "pt" }));
    writeSynced(join(tmp, "optimizer.safetensors"), encodeSafetensors(moments));
    writeSynced(join(tmp, "state.json"), JSON.stringify(state));
    fsyncDir(tmp);
    rmSync(final, { recursive: true, force: true });
    renameSync(tmp, final);
    fsyncDir(root);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  const all = listCheckpoints(outDir);
  for (const old of all.slice(0, Math.max(0, all.length - keepLast))) rmSync(old.path, { recursive: true, force: true });
  return final;
}

/** Loads a checkpoint into model and optimizer (shape-checked) and returns its state. */
export function loadCheckpoint(path: string, model: Module, optimizer: AdamW | null): CheckpointState {
  const statePath = join(path, "state.json");
  if (!existsSync(statePath)) throw new Error(`loadCheckpoint: ${path} is incomplete (no state.json)`);
  let state: CheckpointState;
  try {
    state = JSON.parse(readFileSync(statePath, "utf8")) as CheckpointState;
  } catch (e) {
    throw new Error(`loadCheckpoint: ${statePath} is not valid JSON: ${(e as Error).message}`);
  }
  if (state.version !== 1) throw new Error(`loadCheckpoint: ${statePath} has version ${String(state.version)}, expected 1`);
  const weightsPath = join(path, "model.safetensors");
  const weights = decodeSafetensors(readFileSync(weightsPath), weightsPath).tensors;
  try {
    model.loadStateDict(Object.fromEntries(Object.entries(weights).map(([k, t]) => [k, { shape: t.shape, data: toFloat32(t) }])));
  } catch (e) {
    throw new Error(`loadCheckpoint: ${weightsPath} does not fit this model (a checkpoint from another model config?): ${(e as Error).message}`);
  }
  if (optimizer !== null) {
    const momentsPath = join(path, "optimizer.safetensors");
    const moments = decodeSafetensors(readFileSync(momentsPath), momentsPath).tensors;
    const get = (key: string) => {
      const t = moments[key];
      if (t === undefined) throw new Error(`loadCheckpoint: ${momentsPath} lacks ${key}`);
      return toFloat32(t);
    };
    for (const [name, p] of model.namedParameters()) optimizer.setMoments(p, get(`m.${name}`), get(`v.${name}`));
    optimizer.steps = state.optimizer.step;
    optimizer.lr = state.optimizer.lr;
  }
  return state;
}

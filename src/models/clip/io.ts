/**
 * CLIP checkpoints in Hugging Face's layout: `config.json` (architectures ["CLIPModel"],
 * nested text_config / vision_config) + `model.safetensors` (float32, CLIPModel key names).
 * Loading is the registry's (models/registry.ts) with CLIP's entry (arch.ts); it ignores
 * the `position_ids` buffers that HF exports carry.
 */
import { loadArchitecture, readArchitectureConfig, saveArchitecture } from "../registry.js";
import { clipArchitecture } from "./arch.js";
import type { ClipConfig } from "./config.js";
import type { ClipModel } from "./model.js";

export function saveClip(dir: string, model: ClipModel, metadata: Record<string, string> = {}): void {
  saveArchitecture(clipArchitecture, dir, model, metadata, "saveClip");
}

export function readClipConfig(dir: string): ClipConfig {
  return readArchitectureConfig(clipArchitecture, dir, "loadClip");
}

export function loadClip(dir: string): ClipModel {
  return loadArchitecture(clipArchitecture, dir, { op: "loadClip" });
}

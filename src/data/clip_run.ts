/**
 * A saved CLIP run folder as inference reads it: config.json + model.safetensors (Hugging Face
 * CLIPModel names) and the caption tokenizer.json beside them, loaded as the model and the
 * caption encoder its text tower reads. The server, the CLI and the evaluators share it.
 *
 *     const run = loadClipRun("runs/clip");          // { model, encoder }
 *     run.encoder.encodeBatch(["a red apple"]);
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { type ClipModel, loadClip } from "../models/clip/index.js";
import { CaptionEncoder } from "./captions.js";
import { tokenizerFor } from "./tokenizer.js";

export interface ClipRun {
  model: ClipModel;
  encoder: CaptionEncoder;
}

/** A saved CLIP run: the model and its caption encoder. */
export function loadClipRun(dir: string): ClipRun {
  const model = loadClip(dir);
  if (!existsSync(join(dir, "tokenizer.json"))) throw new Error(`CLIP: ${join(dir, "tokenizer.json")} does not exist; a CLIP run folder holds config.json, model.safetensors and tokenizer.json`);
  return { model, encoder: new CaptionEncoder(tokenizerFor(dir), model.config.text_config.max_position_embeddings) };
}

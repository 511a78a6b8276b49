/**
 * CLIP: a ViT image tower and a causal text tower trained together with a symmetric
 * InfoNCE loss, so that matching images and captions land close in one embedding space.
 * Configs and parameter names follow Hugging Face's CLIPModel; checkpoints are
 * config.json + model.safetensors.
 *
 *     const model = new ClipModel(clipConfig({ text_config: { vocab_size: 2048, eos_token_id: 0 } }));
 *     const { loss } = model.forward(pixels, ids);   // pixels [B, 3, 32, 32], ids [B, T]
 *     loss.backward();
 */
export { ClipModel, ClipTextTransformer, ClipVisionTransformer, PatchEmbedding } from "./model.js";
export type { ClipOutput } from "./model.js";
export { clipConfig, validateClipConfig, CLIP_PRESETS } from "./config.js";
export type { ClipConfig, ClipTextConfig, ClipVisionConfig, ClipActivation, ClipConfigInput } from "./config.js";
export { contrastiveLoss, l2Normalize, quickGelu } from "./ops.js";
export type { ContrastiveOutput } from "./ops.js";
export { saveClip, loadClip, readClipConfig } from "./io.js";

/**
 * BERT: the bidirectional masked-LM encoder (Hugging Face's BertForMaskedLM names and
 * layouts), trained with the `mlm` objective; it also gives mean-pooled sentence
 * embeddings and fill-mask predictions, and saves config.json + model.safetensors.
 *
 *     const model = new BertForMaskedLM(bertConfig({ vocab_size: 258, ...BERT_PRESETS.small }));
 *     const { logits, loss } = model.forward(ids, labels);   // labels < 0 are not targets
 *     const [best] = model.fillMask([72, 101, MASK, 108, 111], 2, { topK: 3 });
 *     saveBert("out/bert", model);
 */
export {
  BertForMaskedLM, BertModel, BertEmbeddings, BertEncoder, BertLayer, BertAttention, BertSelfAttention, BertResidualOutput,
  BertIntermediate, BertOnlyMLMHead, BertLMPredictionHead, BertPredictionHeadTransform,
} from "./model.js";
export type { BertOutput, FillMaskPrediction } from "./model.js";
export { bertConfig, validateBertConfig, BERT_PRESETS } from "./config.js";
export type { BertConfig } from "./config.js";
export { saveBert, loadBert, readBertConfig } from "./io.js";

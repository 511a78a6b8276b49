/**
 * BERT's registry entry: config.json of BertForMaskedLM (refusing relative positions, decoders
 * and the erf GELU), Hugging Face checkpoint names (the `position_ids` buffer, the pooler and
 * next-sentence head of BertForPreTraining, TF-era LayerNorm `gamma`/`beta`, a tied decoder
 * weight and bias), LoRA targets, and what a masked LM can do.
 */
import { type Architecture, buildConfig, namedToken } from "../architecture.js";
import { dropTied, mapKeys, sameValues } from "../checkpoint.js";
import { type BertConfig, bertConfig } from "./config.js";
import { BertForMaskedLM } from "./model.js";

const FIELDS = [
  "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act", "max_position_embeddings",
  "type_vocab_size", "layer_norm_eps", "initializer_range", "pad_token_id",
] as const;
const DROPOUT = ["hidden_dropout_prob", "attention_probs_dropout_prob"] as const;

/** Keys of HF exports that a BertForMaskedLM has no parameter for and does not need. */
const UNUSED = [/^bert\.embeddings\.position_ids$/, /^bert\.pooler\./, /^cls\.seq_relationship\./];

export const bertArchitecture: Architecture<BertForMaskedLM, BertConfig> = {
  modelType: "bert",
  title: "BERT",
  hfClasses: ["BertForMaskedLM", "BertForPreTraining", "BertModel"],
  capabilities: ["embed", "classify", "fill-mask"],
  loraTargets: ["query", "key", "value", "output.dense", "intermediate.dense"],
  embeddingKey: "bert.embeddings.word_embeddings.weight",

  owns: (model: unknown): model is BertForMaskedLM => model instanceof BertForMaskedLM,

  readConfig(c, { op, path, huggingFace, notes }) {
    const refuse = (why: string): never => {
      throw new Error(`${op}: ${path}: ${why}`);
    };
    if (c.position_embedding_type !== undefined && c.position_embedding_type !== "absolute") {
      refuse(`position_embedding_type ${JSON.stringify(c.position_embedding_type)} is not supported; only "absolute" is supported`);
    }
    if (c.is_decoder === true) refuse(`is_decoder true describes a decoder; only the bidirectional encoder is supported`);
    if (c.hidden_act === undefined) {
      refuse(`hidden_act is missing, which Hugging Face reads as the erf "gelu"; Plinth's BERT uses the tanh GELU ("gelu_new"), and an erf-trained checkpoint would compute slightly different values`);
    }
    // HF configs carry many more fields (transformers_version, use_cache, ...); keep the ones the model reads.
    return buildConfig(c, FIELDS, DROPOUT, { huggingFace, notes }, refuse, (picked) => bertConfig(picked as Partial<BertConfig> & { vocab_size: number }));
  },

  mapWeights(raw, where) {
    const dict = mapKeys(raw, (key) => UNUSED.some((r) => r.test(key)) ? null
      : key.replace(/\.LayerNorm\.gamma$/, ".LayerNorm.weight").replace(/\.LayerNorm\.beta$/, ".LayerNorm.bias"));
    dropTied(dict, "cls.predictions.decoder.weight", "bert.embeddings.word_embeddings.weight", where);
    const decoderBias = dict["cls.predictions.decoder.bias"];
    if (decoderBias !== undefined) {
      const bias = dict["cls.predictions.bias"];
      if (bias === undefined) dict["cls.predictions.bias"] = decoderBias;
      else if (!sameValues(decoderBias.data, bias.data)) {
        throw new Error(`${where}: cls.predictions.decoder.bias differs from cls.predictions.bias (Hugging Face ties them)`);
      }
      delete dict["cls.predictions.decoder.bias"];
    }
    return dict;
  },

  create: (config, { seed = 0 } = {}) => new BertForMaskedLM(config, { seed }),
  configOf: (model) => model.config,
  hiddenSize: (model) => model.config.hidden_size,
  contextLength: (model) => model.config.max_position_embeddings,
  vocabSize: (model) => model.config.vocab_size,
  shape: ({ config: c }) => `${c.num_hidden_layers} layers, d=${c.hidden_size}, ${c.num_attention_heads} heads, ${c.max_position_embeddings} positions`,

  hfExport(model, tokenizer) {
    if (tokenizer === null) return {};
    return {
      tokenizer: {
        tokenizer_class: "PreTrainedTokenizerFast", cls_token: namedToken(tokenizer, "[CLS]"), sep_token: namedToken(tokenizer, "[SEP]"),
        mask_token: namedToken(tokenizer, "[MASK]"), pad_token: namedToken(tokenizer, "[PAD]"), unk_token: null,
        model_max_length: model.config.max_position_embeddings, clean_up_tokenization_spaces: false,
      },
    };
  },

  embed: (model, seqs) => model.embedSequences(seqs),
};

/**
 * Byte-level BPE, GPT-2 style, in Hugging Face's tokenizer.json format: train merges on a
 * corpus, encode and decode losslessly (any text, and any bytes through encodeBytes), and
 * save a file that Hugging Face tokenizers read to the same ids.
 *
 *     const tok = trainBPE(docs.map((d) => d.text), { vocabSize: 4096 });
 *     const ids = tok.encode("Call me Ishmael.<|endoftext|>"); // the special token stays whole
 *     tok.decode(ids);                                          // "Call me Ishmael.<|endoftext|>"
 *     tok.save("out/tokenizer.json");
 *     BPETokenizer.load("out/tokenizer.json").encode("Call me Ishmael."); // same ids
 */
export { BPETokenizer, IdBuffer } from "./bpe.js";
export type { AddedToken, BPEModelSpec, EncodeOptions } from "./bpe.js";
export { trainBPE, DEFAULT_SPECIAL_TOKENS } from "./train.js";
export type { TrainBPEOptions, TrainProgress } from "./train.js";
export type { HuggingFaceTokenizerJSON, HuggingFaceAddedToken } from "./hf.js";
export { BYTE_TO_CHAR, pretokenize } from "./bytelevel.js";

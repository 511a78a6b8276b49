/**
 * Prompt templates for image–text models: `{label}` is filled with a class name. The general
 * defaults fit photographs and pictures of any kind (the emoji set keeps its own in emoji.ts);
 * the same templates caption labeled images for training and build the zero-shot classifier,
 * so what the text tower learns is what zero-shot asks.
 *
 *     fillTemplates(GENERAL_IMAGE_PROMPTS, "tabby cat");   // ["a photo of a tabby cat.", ...]
 */
export const GENERAL_IMAGE_PROMPTS = ["a photo of a {label}.", "a picture of a {label}.", "an image of a {label}.", "{label}"] as const;

/** Checks templates: at least one, each with a {label} placeholder. */
export function checkTemplates(templates: readonly string[], where = "templates"): void {
  if (templates.length === 0) throw new RangeError(`${where}: give at least one template with a {label} placeholder, e.g. "a photo of a {label}."`);
  for (const t of templates) {
    if (typeof t !== "string" || !t.includes("{label}")) throw new RangeError(`${where}: template ${JSON.stringify(t)} has no {label} placeholder (e.g. "a photo of a {label}.")`);
  }
}

export function fillTemplates(templates: readonly string[], label: string): string[] {
  checkTemplates(templates);
  return templates.map((t) => t.replaceAll("{label}", label));
}

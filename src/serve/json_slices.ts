/**
 * A large JSON reply built a slice at a time. A 256-input embeddings reply is 65,536 numbers
 * (about 1.3 MB of text); JSON.stringify of it in one call holds the event loop for tens of
 * milliseconds on a loaded machine, which lands on whichever chat token is due next. Here the
 * items are stringified in slices of about `sliceMs`, with the event loop free between them.
 *
 *     const body = await stringifyInSlices({ object: "list", model }, "data", items, { usage });
 *     reply.type("application/json").send(body);
 */

/** The JSON text of `{...head, [key]: items, ...tail}`, yielding to the event loop between slices. */
export async function stringifyInSlices(head: Record<string, unknown>, key: string, items: readonly unknown[], tail: Record<string, unknown>, sliceMs = 2): Promise<string> {
  if (!(sliceMs > 0)) throw new RangeError(`stringifyInSlices: sliceMs must be > 0, got ${sliceMs}`);
  if (key in head || key in tail) throw new RangeError(`stringifyInSlices: '${key}' is also a field of head or tail`);
  const parts: string[] = [];
  let t0 = performance.now();
  for (const item of items) {
    parts.push(JSON.stringify(item));
    if (performance.now() - t0 >= sliceMs) {
      await new Promise((resolve) => setImmediate(resolve));
      t0 = performance.now();
    }
  }
  const h = JSON.stringify(head), t = JSON.stringify(tail);
  return `${h.slice(0, -1)}${h.length > 2 ? "," : ""}${JSON.stringify(key)}:[${parts.join(",")}]${t.length > 2 ? "," : ""}${t.slice(1)}`;
}

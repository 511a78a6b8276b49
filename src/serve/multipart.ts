/** A small multipart/form-data reader (RFC 7578) for /v1/files: the whole body is in memory, bounded by the route's body limit. */
export interface Part {
  name: string;
  filename: string | null;
  contentType: string | null;
  data: Buffer;
}

export class MultipartError extends Error {}

export function boundaryOf(contentType: string | undefined): string {
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType ?? "");
  if (m === null) throw new MultipartError(`multipart body without a boundary in Content-Type ${JSON.stringify(contentType)}`);
  return m[1] ?? m[2];
}

export function parseMultipart(body: Buffer, boundary: string): Part[] {
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: Part[] = [];
  let at = body.indexOf(delimiter);
  if (at < 0) throw new MultipartError("multipart body does not contain its boundary");
  for (;;) {
    at += delimiter.length;
    if (body.subarray(at, at + 2).toString() === "--") break;  // closing delimiter
    if (body.subarray(at, at + 2).toString() === "\r\n") at += 2;
    const headerEnd = body.indexOf("\r\n\r\n", at);
    if (headerEnd < 0) throw new MultipartError("multipart part without a header end");
    const headers = body.subarray(at, headerEnd).toString("utf8").split("\r\n");
    const next = body.indexOf(Buffer.from(`\r\n--${boundary}`), headerEnd + 4);
    if (next < 0) throw new MultipartError("multipart part is not terminated by the boundary");
    const disposition = headers.find((h) => /^content-disposition:/i.test(h)) ?? "";
    const name = /\bname="([^"]*)"/i.exec(disposition)?.[1];
    if (name === undefined) throw new MultipartError("multipart part without a name in Content-Disposition");
    const filename = /\bfilename="([^"]*)"/i.exec(disposition)?.[1] ?? null;
    const type = headers.find((h) => /^content-type:/i.test(h))?.replace(/^content-type:\s*/i, "") ?? null;
    parts.push({ name, filename, contentType: type, data: body.subarray(headerEnd + 4, next) });
    at = next + 2;
  }
  return parts;
}

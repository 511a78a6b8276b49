/**
 * The one error funnel: every failure becomes an ApiError from this catalogue and is rendered
 * as OpenAI's body `{ error: { message, type, param, code } }` with the catalogue's status.
 *
 *     throw apiError("model_not_found", `The model "tiny:x" does not exist or you do not have access to it.`, "model");
 */
import { CursorError } from "../registry/jobs.js";
import { RegistryUnavailableError } from "../registry/store.js";

export interface ErrorKind {
  status: number;
  type: "invalid_request_error" | "authentication_error" | "permission_error" | "not_found_error" | "rate_limit_error" | "insufficient_quota" | "server_error";
}

export const ERRORS = {
  invalid_json: { status: 400, type: "invalid_request_error" },
  invalid_request: { status: 400, type: "invalid_request_error" },
  invalid_value: { status: 400, type: "invalid_request_error" },
  missing_required_parameter: { status: 400, type: "invalid_request_error" },
  unknown_parameter: { status: 400, type: "invalid_request_error" },
  context_length_exceeded: { status: 400, type: "invalid_request_error" },
  invalid_file: { status: 400, type: "invalid_request_error" },
  unsupported_model: { status: 400, type: "invalid_request_error" },
  job_not_cancellable: { status: 400, type: "invalid_request_error" },
  invalid_api_key: { status: 401, type: "authentication_error" },
  missing_api_key: { status: 401, type: "authentication_error" },
  admin_only: { status: 403, type: "permission_error" },
  permission_denied: { status: 403, type: "permission_error" },
  model_not_found: { status: 404, type: "invalid_request_error" },
  not_found: { status: 404, type: "not_found_error" },
  request_timeout: { status: 408, type: "invalid_request_error" },
  body_too_large: { status: 413, type: "invalid_request_error" },
  unsupported_media_type: { status: 415, type: "invalid_request_error" },
  rate_limit_exceeded: { status: 429, type: "rate_limit_error" },
  headers_too_large: { status: 431, type: "invalid_request_error" },
  insufficient_quota: { status: 429, type: "insufficient_quota" },
  internal_error: { status: 500, type: "server_error" },
  unavailable: { status: 503, type: "server_error" },
  // The balancer's own (src/serve/balancer.ts): a replica that failed mid-answer, or answered too late.
  bad_gateway: { status: 502, type: "server_error" },
  gateway_timeout: { status: 504, type: "server_error" },
} as const satisfies Record<string, ErrorKind>;

export type ErrorCode = keyof typeof ERRORS;

export class ApiError extends Error {
  readonly status: number;
  readonly type: string;
  constructor(readonly code: ErrorCode, message: string, readonly param: string | null = null, readonly headers: Record<string, string> = {}) {
    super(message);
    this.name = "ApiError";
    this.status = ERRORS[code].status;
    this.type = ERRORS[code].type;
  }
  body(): { error: { message: string; type: string; param: string | null; code: string } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const apiError = (code: ErrorCode, message: string, param: string | null = null): ApiError => new ApiError(code, message, param);

/** Maps any thrown value (Fastify's own errors included) to an ApiError. */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof CursorError) return apiError("invalid_value", e.message, e.param);
  // PostgreSQL down or restarting: a clean 503 the client may retry (the replica reconnects by itself).
  if (e instanceof RegistryUnavailableError) return new ApiError("unavailable", "The registry is unavailable for a moment (its database is restarting or unreachable); please retry.", null, { "retry-after": "1" });
  const err = e as { code?: string; statusCode?: number; message?: string };
  switch (err.code) {
    case "FST_ERR_CTP_INVALID_JSON_BODY":
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return apiError("invalid_json", `We could not parse the JSON body of your request: ${err.message ?? "invalid JSON"}. Send a JSON object with Content-Type: application/json.`);
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return apiError("body_too_large", `The request body is too large: ${err.message ?? ""}`.trim());
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return apiError("unsupported_media_type", `Unsupported Content-Type: ${err.message ?? ""}. Send application/json (or multipart/form-data to /v1/files).`);
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return apiError("invalid_request", "The request body's length does not match its Content-Length header.");
    case "FST_ERR_BAD_URL":
      return apiError("invalid_request", `The request URL is malformed: ${err.message ?? "it is not a valid URL"}. Percent-encode it correctly.`);
    case "FST_ERR_MAX_PARAM_LENGTH":
      return apiError("invalid_request", "A path parameter of the request URL is too long.");
  }
  if (err.statusCode === 400 && e instanceof SyntaxError) return apiError("invalid_json", `We could not parse the JSON body of your request: ${e.message}`);
  if (err.statusCode === 413) return apiError("body_too_large", err.message ?? "The request body is too large");
  if (err.statusCode === 415) return apiError("unsupported_media_type", err.message ?? "Unsupported Content-Type");
  if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) return apiError("invalid_value", err.message ?? "Bad request");
  return apiError("internal_error", `Internal error: ${err.message ?? String(e)}`);
}

/** What Node's HTTP parser errors mean for the client that caused them. */
const PARSE_ERRORS: Record<string, string> = {
  HPE_INVALID_EOF_STATE: "the connection ended before the body was complete (fewer bytes than its Content-Length)",
  HPE_CLOSED_CONNECTION: "bytes followed the body of a request that closes the connection (more bytes than its Content-Length)",
  HPE_INVALID_METHOD: "bytes after a request's body do not start a request (more bytes than its Content-Length?)",
  HPE_INVALID_CONTENT_LENGTH: "its Content-Length header is not a single non-negative integer",
  HPE_UNEXPECTED_CONTENT_LENGTH: "it has both Content-Length and Transfer-Encoding headers",
  HPE_INVALID_TRANSFER_ENCODING: "its Transfer-Encoding header is not one this server reads (chunked)",
  HPE_INVALID_CHUNK_SIZE: "a chunk of its chunked body has an invalid size",
  HPE_INVALID_HEADER_TOKEN: "a header name or value has characters HTTP does not allow",
};

/**
 * The raw HTTP response for an error Node's HTTP parser raises before any route runs (a header
 * over the size limit, a body that disagrees with its Content-Length, a request line that is
 * not HTTP, a request that never finishes): the same OpenAI error body as every other error.
 */
export function protocolErrorResponse(e: { code?: string; message?: string }): string {
  const err = e.code === "HPE_HEADER_OVERFLOW"
    ? apiError("headers_too_large", "The request's headers are larger than this server accepts (16 KiB in all).")
    : e.code === "ERR_HTTP_REQUEST_TIMEOUT"
      ? apiError("request_timeout", "The request was not received in time (its body may be shorter than its Content-Length).")
      : apiError("invalid_request", `The request is not valid HTTP: ${PARSE_ERRORS[e.code ?? ""] ?? "it could not be parsed"} (${e.code ?? "parse error"}${e.message ? `: ${e.message}` : ""}).`);
  const body = JSON.stringify(err.body());
  const reasons: Record<number, string> = { 400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large" };
  const reason = reasons[err.status] ?? "Bad Request";
  return `HTTP/1.1 ${err.status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

/**
 * HAProxy in front of replicas: the configuration `plinth serve --replicas N` runs, and the one
 * shipped as deploy/haproxy.cfg (three replicas on 127.0.0.1:8081-8083 behind :8080).
 *
 * Adapter-aware routing: a request for `base:adapter` goes to the replica that has the adapter
 * loaded, by consistent hashing on the model name (HAProxy's `balance hash` over a variable,
 * `hash-type consistent`), with bounded load: `hash-balance-factor` keeps any replica under that
 * percentage of the average number of requests in flight, and a request over it spills to the
 * next replica on the ring. The model name is the `X-Plinth-Model` header when the client sends
 * one, else the JSON body's "model" (`option http-buffer-request` waits for the body, up to
 * tune.bufsize; the `json_query` converter reads it). Requests for a base alone, and everything
 * else (GET routes, uploads, bodies larger than the buffer), are balanced round robin. Any
 * replica answers any request correctly: routing only decides whose adapter cache is warm.
 *
 * Errors HAProxy answers for a replica (none up, one that failed or timed out) carry OpenAI's
 * error body, as the replicas' own do. (A request that is not valid HTTP is refused by HAProxy's
 * HTTP parser before any of this applies: its 400 is HAProxy's own page, in HAProxy 2.6.)
 *
 *     haproxyConfig({ bind: { host: "127.0.0.1", port: 8080 }, replicas: [{ name: "r1", host: "127.0.0.1", port: 8081 }] })
 */
import { type ErrorCode, apiError } from "./errors.js";

/** The balancer's own error answers: status, then the catalogue's code and a message. */
const BALANCER_ERRORS: [ErrorCode, string][] = [
  ["internal_error", "Internal error in the balancer."],
  ["bad_gateway", "The replica serving this request failed before it answered; please retry."],
  ["unavailable", "No replica is available at the moment; please retry."],
  ["gateway_timeout", "The replica serving this request did not answer in time; please retry."],
];

/** HAProxy's http-error lines for BALANCER_ERRORS: OpenAI's body, as JSON in a single-quoted string. */
function httpErrors(): string[] {
  return BALANCER_ERRORS.map(([code, message]) => {
    const e = apiError(code, message);
    const body = JSON.stringify(e.body());
    if (body.includes("'")) throw new Error(`balancer error ${code}: no single quotes in its message`);
    return `    http-error status ${e.status} content-type application/json string '${body}'`;
  });
}

export interface BalancerOptions {
  bind: { host: string; port: number };
  replicas: { name: string; host: string; port: number }[];
  /** Hash on the adapter (default true); false: round robin, for comparison. */
  adapterAware?: boolean;
  /** Most in-flight requests a replica takes, as a percentage of the average, before requests spill over (default 150). */
  balanceFactor?: number;
  /** Bytes of a request HAProxy buffers, and so of a JSON body it can read the model from (default 65536). */
  bufferBytes?: number;
}

export function haproxyConfig(o: BalancerOptions): string {
  const aware = o.adapterAware ?? true;
  const factor = o.balanceFactor ?? 150;
  if (o.replicas.length === 0) throw new Error("haproxyConfig: no replicas");
  if (!(Number.isInteger(factor) && factor > 100)) throw new Error(`haproxyConfig: balanceFactor must be an integer above 100, got ${factor}`);
  const routing = aware
    ? [
      "    # The model: X-Plinth-Model if the client sends it, else the JSON body's \"model\".",
      "    option http-buffer-request",
      "    http-request set-var(txn.model) req.hdr(x-plinth-model) if { req.hdr(x-plinth-model) -m found }",
      "    http-request set-var(txn.model) req.body,json_query('$.model') if !{ var(txn.model) -m found } METH_POST",
      "    # Only an adapter is hashed (base:adapter, ft:...): a base alone goes round robin.",
      "    http-request set-var(txn.adapter) var(txn.model) if { var(txn.model) -m sub : }",
      "    balance hash var(txn.adapter)",
      "    hash-type consistent",
      `    hash-balance-factor ${factor}`,
    ]
    : ["    balance roundrobin"];
  return [
    "# HAProxy in front of Plinth replicas (written by src/serve/balancer.ts; plinth serve --replicas N",
    "# writes the same for its replicas). Run: haproxy -f haproxy.cfg. See docs/scaling.md.",
    "global",
    "    maxconn 4096",
    `    tune.bufsize ${o.bufferBytes ?? 65536}`,
    "",
    "defaults",
    "    mode http",
    "    timeout connect 2s",
    "    timeout client 600s",
    "    timeout server 600s",
    "    timeout http-request 30s",
    "    # A replica busy generating answers its health check late, not never: down only when it",
    "    # refuses connections or stays silent this long (the check interval would be the limit otherwise).",
    "    timeout check 5s",
    "    # A replica that refuses the connection (stopped, killed) is retried on another one; a",
    "    # request that reached a replica is never sent twice (it may have been metered).",
    "    retries 3",
    "    retry-on conn-failure",
    "    option redispatch 1",
    "    # Streams (server-sent events) are sent on as each piece arrives, not held back for more",
    "    # data: tokens reach the client at once, and a client gone mid-stream is noticed at once.",
    "    option http-no-delay",
    "    # Errors the balancer answers itself: OpenAI's error body, as the replicas answer theirs.",
    ...httpErrors(),
    "",
    "frontend plinth",
    `    bind ${o.bind.host}:${o.bind.port}`,
    "    default_backend replicas",
    "",
    "backend replicas",
    ...routing,
    "    option httpchk GET /healthz",
    "    http-check expect status 200",
    "    default-server check inter 1s fall 2 rise 1",
    ...o.replicas.map((r) => `    server ${r.name} ${r.host}:${r.port}`),
    "",
  ].join("\n");
}

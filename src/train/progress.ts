/** A one-line progress display: rate, loss and ETA; redraws in place on a terminal. */
export class Progress {
  private last = 0;
  private readonly start = Date.now();
  constructor(private readonly label: string, private readonly out: NodeJS.WriteStream = process.stderr) {}

  update(fraction: number, fields: Record<string, string>, force = false): void {
    const now = Date.now();
    if (!force && now - this.last < (this.out.isTTY ? 200 : 10000)) return;
    this.last = now;
    const elapsed = (now - this.start) / 1000;
    const f = Math.min(1, Math.max(0, fraction));
    const eta = f > 0 ? elapsed * (1 - f) / f : NaN;
    const width = 24;
    const filled = Math.round(f * width);
    const bar = "█".repeat(filled) + "░".repeat(width - filled);
    const text = `${this.label} ${bar} ${(f * 100).toFixed(0).padStart(3)}% ${Object.entries(fields).map(([k, v]) => `${k} ${v}`).join(" · ")} · ${formatSeconds(elapsed)} elapsed, ETA ${formatSeconds(eta)}`;
    if (this.out.isTTY) this.out.write(`\r\x1b[2K${text}`);
    else this.out.write(text + "\n");
  }

  done(): void {
    if (this.out.isTTY) this.out.write("\n");
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "--";
  if (s < 60) return `${s.toFixed(0)}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${String(Math.round(s % 60)).padStart(2, "0")}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

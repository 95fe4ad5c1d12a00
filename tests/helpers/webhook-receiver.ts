// A real HTTP receiver for the collector's case webhook, as a tracker integration would write one:
// it checks the HMAC signature and drops repeats by idempotency key. It can be down (not
// listening), and can swallow its answer to chosen deliveries (processed, but the sender never
// hears so: at-least-once delivery must then bring a duplicate).
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';

export interface ReceivedEvent {
  eventId: string;
  type: string;
  caseId: string | null;
  payload: Record<string, unknown>;
}

export class WebhookReceiver {
  /** Events accepted once each, in arrival order. */
  readonly events: ReceivedEvent[] = [];
  duplicates = 0;
  badSignatures = 0;
  /** Deliveries whose answer is swallowed (connection dropped after processing). */
  dropAnswers = 0;
  private server: Server | undefined;
  private readonly seen = new Set<string>();

  constructor(
    readonly port: number,
    private readonly secret: string,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}/hooks/voipready`;
  }

  private verify(signature: string | undefined, body: string): boolean {
    const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(signature ?? '');
    if (!m) return false;
    const want = createHmac('sha256', this.secret).update(`${m[1]}.${body}`).digest();
    return timingSafeEqual(want, Buffer.from(m[2]!, 'hex'));
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (!this.verify(req.headers['x-voipready-signature'] as string | undefined, body)) {
          this.badSignatures++;
          res.writeHead(401).end();
          return;
        }
        const key = String(req.headers['idempotency-key']);
        if (this.seen.has(key)) {
          this.duplicates++;
        } else {
          this.seen.add(key);
          const event = JSON.parse(body) as ReceivedEvent;
          if (event.eventId !== key) throw new Error('idempotency key differs from the event id');
          this.events.push(event);
        }
        if (this.dropAnswers > 0) {
          this.dropAnswers--;
          req.socket.destroy();
          return;
        }
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.port, '127.0.0.1', () => resolve());
    });
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  types(caseId?: string): string[] {
    return this.events.filter((e) => caseId === undefined || e.caseId === caseId).map((e) => e.type);
  }
}

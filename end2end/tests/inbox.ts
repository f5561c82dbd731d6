import { SMTPServer } from "smtp-server";
import { simpleParser } from "mailparser";
import { expect } from "@playwright/test";

export interface Mail {
  to: string[];
  subject: string;
  text: string;
  html: string;
}

/** A real SMTP server on loopback, the one the server under test mails to. */
export class Inbox {
  readonly mails: Mail[] = [];
  private server?: SMTPServer;

  async start(port: number) {
    this.server = new SMTPServer({
      authOptional: true,
      disabledCommands: ["STARTTLS"],
      logger: false,
      onData: (stream, session, done) => {
        simpleParser(stream).then((parsed) => {
          this.mails.push({
            to: session.envelope.rcptTo.map((r) => r.address.toLowerCase()),
            subject: parsed.subject ?? "",
            text: parsed.text ?? "",
            html: typeof parsed.html === "string" ? parsed.html : "",
          });
          done();
        }, done);
      },
    });
    await new Promise<void>((resolve) => this.server!.listen(port, "127.0.0.1", resolve));
  }

  async stop() {
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  /** The next mail to `address` after the `seen` ones already had, waiting for it. */
  async next(address: string, seen = 0): Promise<Mail> {
    const to = (mail: Mail) => mail.to.includes(address.toLowerCase());
    await expect.poll(() => this.mails.filter(to).length, { timeout: 15_000 }).toBeGreaterThan(seen);
    return this.mails.filter(to)[seen];
  }

  count(address: string) {
    return this.mails.filter((mail) => mail.to.includes(address.toLowerCase())).length;
  }
}

/** The link in a mail to `page`, and its token. */
export function linkIn(mail: Mail, page: string): { url: string; token: string } {
  const match = mail.text.match(new RegExp(`(https?://[^\\s]+${page}\\?token=([A-Za-z0-9_-]+))`));
  expect(match, mail.text).not.toBeNull();
  return { url: match![1], token: match![2] };
}

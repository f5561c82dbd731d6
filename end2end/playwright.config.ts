import { defineConfig } from "@playwright/test";

// Tests run against the release build (`make test` builds it first) on a port
// of their own and a fresh database, so a running dev server is not disturbed.
const port = Number(process.env.E2E_PORT ?? 3100);
const shortPort = port + 1;
export const baseURL = `http://127.0.0.1:${port}`;
/** The server whose access tokens live ten seconds. */
export const shortLivedURL = `http://127.0.0.1:${shortPort}`;
export const databaseUrl = "sqlite://target/e2e/gatehouse.db";
export const shortDatabaseUrl = "sqlite://target/e2e-short/gatehouse.db";
/** The SMTP server the mail tests start (`tests/inbox.ts`); the usual server mails to it. */
export const smtpPort = port + 2;

export default defineConfig({
  testDir: "./tests",
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  forbidOnly: !!process.env.CI,
  retries: 0,
  reporter: [["list"], ["html", { open: "never" }]],
  use: {
    baseURL,
    screenshot: "on",
    trace: "retain-on-failure",
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      // Running as root on a machine without network: without these Chromium
      // stalls or floods the log with refused connections.
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
      ],
    },
  },
  // Two servers, each on a fresh database: the usual one, and one whose access
  // tokens live ten seconds, for the tests of expiry and silent refresh, whose
  // sign-ins count as recent for 30 seconds (step-up) and whose admins must
  // use a second factor.
  webServer: [
    server(port, "target/e2e", { GATEHOUSE_SMTP_URL: `smtp://127.0.0.1:${smtpPort}` }),
    server(shortPort, "target/e2e-short", {
      GATEHOUSE_ACCESS_TTL: "10",
      GATEHOUSE_REAUTH_WINDOW: "30",
      GATEHOUSE_REQUIRE_SECOND_FACTOR: "admins",
    }),
  ],
});

function server(listen: number, dir: string, extra: Record<string, string>) {
  return {
    command: `rm -rf ${dir} && exec target/release/gatehouse serve`,
    cwd: "..",
    url: `http://127.0.0.1:${listen}/healthz`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: "pipe" as const,
    stderr: "pipe" as const,
    env: {
      LEPTOS_SITE_ADDR: `127.0.0.1:${listen}`,
      DATABASE_URL: `sqlite://${dir}/gatehouse.db`,
      RUST_LOG: "warn",
      // Many accounts and logins from one address, by design.
      GATEHOUSE_REGISTRATIONS_PER_IP: "10000/hour",
      GATEHOUSE_LOGIN_FAILURES_PER_IP: "10000/minute",
      ...extra,
    },
  };
}

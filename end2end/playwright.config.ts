import { defineConfig } from "@playwright/test";
import path from "node:path";

// Tests run on a port of their own and a fresh database, so a running dev
// server is not disturbed, against the release bundle (`cargo leptos build
// --release --split`, hashed names listed in target/release/hash.txt) served by
// the server binary the Rust tests build (`cargo test --features ssr`), unless
// E2E_SERVER names another (target/release/gatehouse after `make run`, say).
// `make test` builds both first.
const port = Number(process.env.E2E_PORT ?? 3100);
const shortPort = port + 1;
export const baseURL = `http://127.0.0.1:${port}`;
/** The server whose access tokens live ten seconds. */
export const shortLivedURL = `http://127.0.0.1:${shortPort}`;
export const databaseUrl = "sqlite://target/e2e/gatehouse.db";
export const shortDatabaseUrl = "sqlite://target/e2e-short/gatehouse.db";
/** The SMTP server the mail tests start (`tests/inbox.ts`); the usual server mails to it. */
export const smtpPort = port + 2;
/** The first of three ports the draining test takes: two instances and their load balancer. */
export const drainingPorts = port + 3;

/** The server under test, relative to the repository root. */
export const serverBinary = process.env.E2E_SERVER ?? "target/debug/gatehouse";
const hashFile = path.resolve(__dirname, "../target/release/hash.txt");

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
    command: `rm -rf ${dir} && exec ${serverBinary} serve`,
    cwd: "..",
    url: `http://127.0.0.1:${listen}/healthz`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: "pipe" as const,
    stderr: "pipe" as const,
    env: { ...serverEnv(listen, `sqlite://${dir}/gatehouse.db`), ...extra },
  };
}

/** The environment of a server under test listening on `listen`. */
export function serverEnv(listen: number, databaseUrl: string): Record<string, string> {
  return {
    LEPTOS_SITE_ADDR: `127.0.0.1:${listen}`,
    DATABASE_URL: databaseUrl,
    RUST_LOG: "warn",
    // The bundle's name and file names: a binary knows them by itself only
    // where cargo-leptos built it (the tests' server is built by cargo test).
    LEPTOS_OUTPUT_NAME: "gatehouse",
    LEPTOS_HASH_FILES: "true",
    LEPTOS_HASH_FILE_NAME: hashFile,
    // Many accounts and logins from one address, by design.
    GATEHOUSE_REGISTRATIONS_PER_IP: "10000/hour",
    GATEHOUSE_LOGIN_FAILURES_PER_IP: "10000/minute",
  };
}

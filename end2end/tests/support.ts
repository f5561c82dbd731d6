import { execFileSync } from "node:child_process";
import path from "node:path";
import { expect, type APIRequestContext, type Browser, type BrowserContext, type Page } from "@playwright/test";
import { AppPage, CredentialsPage } from "./pages/app";
import { serverBinary } from "../playwright.config";

/** Strong enough for the password rule (zxcvbn score 3 or more). */
export const PASSWORD = "violet-harbour-quantum-87";

let counter = 0;
/** A username no other test (or earlier run on the same database) has used. */
export function uniqueName(prefix = "user"): string {
  counter += 1;
  return `${prefix}-${Date.now().toString(36)}-${process.pid}-${counter}`.slice(0, 32);
}

/** Creates an account through the JSON API and ends the session registering started. */
export async function createAccount(request: APIRequestContext, username = uniqueName()): Promise<string> {
  const response = await request.post("/auth/register", { data: { username, password: PASSWORD } });
  expect(response.status(), await response.text()).toBe(201);
  const cookie = response.headers()["set-cookie"].split(";")[0];
  const logout = await request.post("/auth/logout", { headers: { cookie } });
  expect(logout.status()).toBe(204);
  return username;
}

/** Logs in through the page, as a person would, and waits for the dashboard. */
export async function logIn(page: Page, username: string, password = PASSWORD): Promise<AppPage> {
  const form = new CredentialsPage(page);
  await form.gotoLogin();
  await form.fill(username, password);
  const app = new AppPage(page);
  await app.expectDashboardOf(username);
  return app;
}

/** Counts the browser's requests to a path, from now on. */
export function countRequests(page: Page | BrowserContext, pathname: string) {
  const seen = { count: 0 };
  page.on("request", (request) => {
    if (new URL(request.url()).pathname === pathname) seen.count += 1;
  });
  return seen;
}

/** Creates an administrator with the CLI, against the database the server under test uses. */
export function createAdmin(databaseUrl: string, username = uniqueName("admin")): string {
  const root = path.resolve(__dirname, "../..");
  execFileSync(path.join(root, serverBinary), ["user", "create", "--username", username, "--role", "admin"], {
    cwd: root,
    input: `${PASSWORD}\n`,
    env: { ...process.env, DATABASE_URL: databaseUrl, RUST_LOG: "warn" },
  });
  return username;
}

/** The refresh cookie, as the browser holds it. */
export async function refreshCookie(context: BrowserContext) {
  const cookies = await context.cookies();
  return cookies.find((c) => c.name.endsWith("gatehouse_refresh"));
}

/** One user logged in on two browsers of their own ("laptop" and "phone"). */
export async function twoDevices(browser: Browser, request: APIRequestContext) {
  const name = await createAccount(request);
  const laptop = await browser.newContext();
  const phone = await browser.newContext();
  const laptopApp = await logIn(await laptop.newPage(), name);
  const phoneApp = await logIn(await phone.newPage(), name);
  return {
    name,
    laptop,
    phone,
    laptopApp,
    phoneApp,
    close: async () => {
      await laptop.close();
      await phone.close();
    },
  };
}

import { expect, test, type Page } from "@playwright/test";
import { countRequests, createAccount, createAdmin, logIn } from "./support";
import { baseURL, databaseUrl } from "../playwright.config";
import { waitForHydration } from "./pages/app";

/**
 * Records every state of the page from the first paint: installed before any
 * of the page's own scripts, it notes after each DOM change whether the login
 * form and whether protected content were in the document.
 */
async function recordStates(page: Page) {
  await page.addInitScript(() => {
    const states: { loginForm: boolean; protected: boolean }[] = [];
    (window as any).__states = states;
    const note = () =>
      states.push({
        loginForm: !!document.querySelector("[data-testid=credentials-form]"),
        protected: !!document.querySelector(".site-header, [data-testid=dashboard-username], [data-testid=sessions]"),
      });
    new MutationObserver(note).observe(document, { childList: true, subtree: true, attributes: true, characterData: true });
    note();
  });
}

async function states(page: Page) {
  return (await page.evaluate(() => (window as any).__states)) as { loginForm: boolean; protected: boolean }[];
}

test("a logged-in load of a protected page never shows the login form", async ({ page, request }) => {
  await logIn(page, await createAccount(request));
  await recordStates(page);
  await page.goto("/sessions");
  await waitForHydration(page);
  await expect(page.getByTestId("this-device")).toBeVisible();
  const seen = await states(page);
  expect(seen.length).toBeGreaterThan(3);
  expect(seen.filter((s) => s.loginForm)).toEqual([]);
  expect(seen.at(-1)!.protected).toBe(true);
});

test("a logged-in load of /login never shows the login form", async ({ page, request }) => {
  await logIn(page, await createAccount(request));
  await recordStates(page);
  await page.goto("/login");
  await waitForHydration(page);
  await expect(page).toHaveURL("/");
  expect((await states(page)).filter((s) => s.loginForm)).toEqual([]);
});

test("a logged-out load of /login never shows protected content", async ({ page }) => {
  const failed: string[] = [];
  page.on("requestfailed", (request) => failed.push(request.url()));
  await recordStates(page);
  await page.goto("/login");
  await waitForHydration(page);
  // Long enough for the silent refresh to have been answered.
  await page.waitForLoadState("networkidle");
  const seen = await states(page);
  expect(seen.filter((s) => s.protected)).toEqual([]);
  expect(seen.at(-1)!.loginForm).toBe(true);
  // The refused refresh's answer is read, not left to hold its connection.
  expect(failed).toEqual([]);
});

test("a logged-out load of a protected page never shows protected content", async ({ page }) => {
  await recordStates(page);
  await page.goto("/account");
  await waitForHydration(page);
  await page.waitForLoadState("networkidle");
  expect((await states(page)).filter((s) => s.protected)).toEqual([]);
});

const PAGES = ["/login", "/register", "/", "/sessions", "/account", "/admin"];

for (const [label, size] of [
  ["desktop", { width: 1280, height: 800 }],
  ["phone", { width: 360, height: 740 }],
] as const) {
  test(`every page, screenshotted on ${label}, fits the width`, async ({ browser, request }, testInfo) => {
    const admin = createAdmin(databaseUrl);
    await createAccount(request);
    const context = await browser.newContext({ viewport: size });
    const page = await context.newPage();
    for (const path of PAGES.slice(0, 2)) {
      await page.goto(path);
      await waitForHydration(page);
      await shoot(page, path, label, testInfo.outputPath.bind(testInfo));
    }
    await logIn(page, admin);
    for (const path of PAGES.slice(2)) {
      await page.goto(path);
      await waitForHydration(page);
      await shoot(page, path, label, testInfo.outputPath.bind(testInfo));
    }
    await context.close();
  });
}

async function shoot(page: Page, path: string, label: string, outputPath: (name: string) => string) {
  await expect(page.locator("h1").first()).toBeVisible();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow, `${path} scrolls sideways on ${label}`).toBeLessThanOrEqual(0);
  const name = path === "/" ? "dashboard" : path.slice(1);
  await page.screenshot({ path: outputPath(`${label}-${name}.png`), fullPage: true });
}

test("the navigation marks the page you are on, rendered and after client-side navigation", async ({ page, request }) => {
  const app = await logIn(page, await createAccount(request));
  await expect(app.nav("Dashboard")).toHaveAttribute("aria-current", "page");
  await app.nav("Sessions").click();
  await expect(page).toHaveURL("/sessions");
  await expect(app.nav("Sessions")).toHaveAttribute("aria-current", "page");
  await expect(app.nav("Dashboard")).not.toHaveAttribute("aria-current", /.*/);

  await page.goto("/account");
  await expect(app.nav("Account")).toHaveAttribute("aria-current", "page");
  await expect(app.nav("Sessions")).not.toHaveAttribute("aria-current", /.*/);
});

test("a loaded page shows its lists from the server's HTML and fetches them only on client-side navigation", async ({ browser, request }) => {
  const admin = createAdmin(databaseUrl);
  const context = await browser.newContext();
  const page = await context.newPage();
  const app = await logIn(page, admin);
  const fetched = {
    sessions: countRequests(page, "/auth/sessions"),
    users: countRequests(page, "/api/admin/users"),
    events: countRequests(page, "/api/admin/events"),
  };

  for (const [path, list] of [["/sessions", "sessions"], ["/admin", "admin-users"]]) {
    const response = await page.goto(path);
    expect(await response!.text()).toContain(`data-testid="${list}"`);
    await waitForHydration(page);
    await page.waitForLoadState("networkidle");
    await expect(page.getByTestId(list)).toContainText(path === "/admin" ? admin : "This device");
  }
  expect([fetched.sessions.count, fetched.users.count, fetched.events.count], "hydration fetches nothing").toEqual([0, 0, 0]);

  await app.nav("Sessions").click();
  await expect(app.sessions).toHaveCount(1);
  await app.nav("Admin").click();
  await expect(page.getByTestId("admin-events")).toContainText("login");
  expect([fetched.sessions.count, fetched.users.count, fetched.events.count], "navigation fetches once each").toEqual([1, 1, 1]);
  await context.close();
});

test("an injected inline script is refused by the page's policy, and the page still hydrates", async ({ page }) => {
  const violations: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error" && message.text().includes("Content Security Policy")) violations.push(message.text());
  });
  await page.goto("/login");
  await waitForHydration(page);
  expect(violations, "the page's own scripts are all allowed").toEqual([]);
  const outcome = await page.evaluate(
    () =>
      new Promise<{ directive: string | null; ran: boolean }>((resolve) => {
        const w = window as unknown as { injectedRan: boolean };
        w.injectedRan = false;
        document.addEventListener(
          "securitypolicyviolation",
          (e) => resolve({ directive: e.effectiveDirective, ran: w.injectedRan }),
          { once: true },
        );
        const script = document.createElement("script");
        script.textContent = "window.injectedRan = true;";
        document.body.appendChild(script);
        setTimeout(() => resolve({ directive: null, ran: w.injectedRan }), 2_000);
      }),
  );
  expect(outcome).toEqual({ directive: "script-src-elem", ran: false });
});

test("following a link from another site to a protected page never shows a password field", async ({ page, request }) => {
  const name = await createAccount(request);
  await logIn(page, name);
  // Every state of every document from the first byte, across the navigations
  // a landing makes, collected here: a binding outlives each document.
  const seen: { url: string; password: boolean }[] = [];
  await page.exposeFunction("__noteState", (url: string, password: boolean) => seen.push({ url, password }));
  await page.addInitScript(() => {
    const note = () =>
      (window as any).__noteState(location.href, !!document.querySelector("input[type=password]"));
    new MutationObserver(note).observe(document, { childList: true, subtree: true, attributes: true, characterData: true });
    note();
  });
  // Another site: localhost is not the same site as 127.0.0.1, so the
  // browser leaves the SameSite=Strict refresh cookie out of this navigation.
  const target = new URL("/sessions", baseURL).href;
  const otherSite = target.replace("127.0.0.1", "localhost").replace("/sessions", "/mail");
  await page.route(otherSite, (route) =>
    route.fulfill({ contentType: "text/html", body: `<a id="link" href="${target}">your sessions</a>` }),
  );
  await page.goto(otherSite);
  await page.click("#link");
  await expect(page).toHaveURL(target);
  await expect(page.getByTestId("this-device")).toBeVisible();
  await waitForHydration(page);
  const onOurSite = seen.filter((s) => s.url.startsWith(baseURL));
  expect(onOurSite.length).toBeGreaterThan(3);
  expect(onOurSite.filter((s) => s.password)).toEqual([]);
  expect(onOurSite.every((s) => new URL(s.url).pathname === "/sessions")).toBe(true);
});

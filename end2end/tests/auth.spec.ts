import { expect, test, type APIRequestContext, type Page } from "@playwright/test";
import { baseURL, databaseUrl, shortLivedURL } from "../playwright.config";
import { AppPage, CredentialsPage, waitForHydration } from "./pages/app";
import { PASSWORD, countRequests, createAccount, createAdmin, logIn, refreshCookie, twoDevices, uniqueName } from "./support";

test("register, then land on the dashboard", async ({ page, context }) => {
  const form = new CredentialsPage(page);
  await form.gotoRegister();
  const name = uniqueName();
  await form.fill(name, PASSWORD);

  const app = new AppPage(page);
  await app.expectDashboardOf(name);
  await expect(app.role).toHaveText("user");
  await expect(app.countdown).toHaveText(/\d+ min \d+ s/);

  const cookie = await refreshCookie(context);
  expect(cookie, "the refresh cookie").toBeTruthy();
  expect(cookie!.httpOnly).toBe(true);
  expect(cookie!.sameSite).toBe("Strict");
  expect(cookie!.secure).toBe(true);
  expect(cookie!.path).toBe("/");
});

test("a wrong password shows a message", async ({ page, request }) => {
  const name = await createAccount(request);
  const form = new CredentialsPage(page);
  await form.gotoLogin();
  await form.fill(name, "not-the-password-at-all");
  await expect(form.error).toHaveText("Wrong username or password.");
  await expect(form.error).toHaveAttribute("aria-live", "polite");
  await expect(page).toHaveURL(/\/login$/);
});

test("a protected URL typed while logged out goes to login, then back to it", async ({ page, request }) => {
  const name = await createAccount(request);
  const response = await page.goto("/sessions?view=all");
  const redirect = response!.request().redirectedFrom();
  expect(redirect, "a real HTTP redirect").toBeTruthy();
  expect((await redirect!.response())!.status()).toBe(302);
  await expect(page).toHaveURL("/login?next=%2Fsessions%3Fview%3Dall");

  await waitForHydration(page);
  const form = new CredentialsPage(page);
  await form.fill(name, PASSWORD);
  await expect(page).toHaveURL("/sessions?view=all");
  await expect(new AppPage(page).thisDevice).toBeVisible();
});

test("a logged-in visit to /login goes on to next", async ({ page, request }) => {
  await logIn(page, await createAccount(request));
  const response = await page.goto("/login?next=%2Faccount");
  expect((await response!.request().redirectedFrom()!.response())!.status()).toBe(302);
  await expect(page).toHaveURL("/account");
  await expect(page.getByRole("heading", { name: "Change your password" })).toBeVisible();
});

test("a reload keeps the session without any refresh request", async ({ page, request }) => {
  const name = await createAccount(request);
  const app = await logIn(page, name);
  const refreshes = countRequests(page, "/auth/refresh");

  const response = await page.reload();
  expect(response!.headers()["cache-control"]).toBe("no-store");
  // The user's data is in the server's HTML, before any script ran.
  expect(await response!.text()).toContain(name);
  await waitForHydration(page);
  await app.expectDashboardOf(name);
  // The hydrated token works at once.
  await app.askServer.click();
  await expect(app.answer).toHaveText(`The server knows you as ${name} (user).`);
  expect(refreshes.count).toBe(0);
});

test.describe("with ten-second access tokens", () => {
  test.use({ baseURL: shortLivedURL });

  /**
   * These tests are about the API client: the live socket, which would refresh
   * by itself when the server closes it at expiry, talks to a silent stand-in.
   */
  async function withoutLiveSocket(page: Page) {
    await page.routeWebSocket(/\/ws/, () => {});
  }

  /**
   * Logged in, then the page's clock stops: it neither refreshes ahead of
   * expiry nor sees the token expire, so once the server's clock has passed
   * the expiry its next calls carry a token the server finds expired.
   */
  async function pageWithExpiredToken(page: Page, request: APIRequestContext) {
    await withoutLiveSocket(page);
    await page.clock.install();
    const name = await createAccount(request);
    const app = await logIn(page, name);
    await page.clock.pauseAt(Date.now() + 1_000);
    const refreshes = countRequests(page, "/auth/refresh");
    return { name, app, refreshes };
  }

  test("the next API call after expiry refreshes silently and succeeds", async ({ page, request }) => {
    const { name, app, refreshes } = await pageWithExpiredToken(page, request);
    const refused = { count: 0 };
    page.on("response", (r) => {
      if (new URL(r.url()).pathname === "/api/me" && r.status() === 401) refused.count += 1;
    });

    await page.waitForTimeout(11_000);
    await app.askServer.click();
    await expect(app.answer).toHaveText(`The server knows you as ${name} (user).`);
    expect(refused.count).toBe(1);
    expect(refreshes.count).toBe(1);
  });

  test("five concurrent calls with an expired token cause exactly one refresh", async ({ page, request }) => {
    const { app, refreshes } = await pageWithExpiredToken(page, request);
    const answers: number[] = [];
    page.on("response", (r) => {
      if (new URL(r.url()).pathname === "/api/me") answers.push(r.status());
    });

    await page.waitForTimeout(11_000);
    // Five clicks in one task: every call is sent before any answer arrives.
    await app.askServer.evaluate((button: HTMLElement) => {
      for (let i = 0; i < 5; i++) button.click();
    });
    await expect.poll(() => answers.filter((s) => s === 200).length).toBe(5);
    expect(answers.filter((s) => s === 401)).toHaveLength(5);
    expect(refreshes.count).toBe(1);
  });

  test("the token is refreshed ahead of expiry while the page is open", async ({ page, request }) => {
    const name = await createAccount(request);
    const app = await logIn(page, name);
    const refreshes = countRequests(page, "/auth/refresh");
    await page.waitForTimeout(12_000);
    expect(refreshes.count).toBeGreaterThanOrEqual(1);
    await app.askServer.click();
    await expect(app.answer).toHaveText(`The server knows you as ${name} (user).`);
  });
});

test("logout clears the cookie, and Back shows no protected data", async ({ page, context, request }) => {
  const name = await createAccount(request);
  const app = await logIn(page, name);
  await app.nav("Sessions").click();
  await expect(app.thisDevice).toBeVisible();

  await app.logout.click();
  await expect(page).toHaveURL("/login");
  expect(await refreshCookie(context)).toBeUndefined();

  await page.goBack();
  await expect(page).toHaveURL(/\/login/);
  await expect(page.getByText(name)).toHaveCount(0);
  await expect(app.thisDevice).toHaveCount(0);
});

test("logout in one tab sends the other tab to /login", async ({ context, request }) => {
  const name = await createAccount(request);
  const first = await context.newPage();
  const firstApp = await logIn(first, name);
  const second = await context.newPage();
  await second.goto("/sessions");
  await waitForHydration(second);
  await expect(new AppPage(second).thisDevice).toBeVisible();

  await firstApp.logout.click();
  await expect(second).toHaveURL(/\/login/, { timeout: 1_000 });
  await expect(second.getByText(name)).toHaveCount(0);
});

test("logging in in one tab lets the other continue", async ({ context, request }) => {
  const name = await createAccount(request);
  const waiting = await context.newPage();
  await new CredentialsPage(waiting).gotoLogin("/account");
  const first = await context.newPage();
  await logIn(first, name);
  await expect(waiting).toHaveURL("/account");
  await expect(new AppPage(waiting).headerUsername).toHaveText(name);
});

test("log out everywhere in one browser logs out another", async ({ browser, request }) => {
  const { name, phone, laptopApp, phoneApp, close } = await twoDevices(browser, request);
  const phonePage = phoneApp.page;

  await laptopApp.nav("Sessions").click();
  await expect(laptopApp.sessions).toHaveCount(2);
  await laptopApp.logoutAll.click();
  await expect(laptopApp.page).toHaveURL("/login");

  // Nobody touches the phone: its live socket closes (1008), its refresh is
  // refused, and it lands on the login page with its cookie cleared.
  await expect(phonePage).toHaveURL(/\/login/, { timeout: 5_000 });
  await expect(phonePage.getByTestId("credentials-form")).toBeVisible();
  await expect(phonePage.getByText(name)).toHaveCount(0);
  expect(await refreshCookie(phone)).toBeUndefined();
  await close();
});

test("no token is ever in localStorage, sessionStorage, IndexedDB or document.cookie", async ({ page, request }) => {
  const tokens: string[] = [];
  page.on("response", async (r) => {
    if (/\/auth\/(login|refresh)$/.test(new URL(r.url()).pathname) && r.status() === 200) {
      tokens.push((await r.json()).access_token);
    }
  });
  const app = await logIn(page, await createAccount(request));
  await page.reload();
  await waitForHydration(page);
  await app.askServer.click();
  await expect(app.answer).toContainText("The server knows you as");
  expect(tokens.length).toBeGreaterThan(0);

  const stored = await page.evaluate(async () => {
    const dump = (s: Storage) => Object.keys(s).map((k) => `${k}=${s.getItem(k)}`);
    const databases = indexedDB.databases ? (await indexedDB.databases()).map((d) => d.name) : [];
    return { local: dump(localStorage), session: dump(sessionStorage), databases, cookie: document.cookie };
  });
  expect(stored.local).toEqual([]);
  expect(stored.session).toEqual([]);
  expect(stored.databases).toEqual([]);
  expect(stored.cookie).toBe("");
  for (const token of tokens) expect(JSON.stringify(stored)).not.toContain(token);
});

test("with JavaScript disabled, login works and protected pages render", async ({ browser, request }) => {
  const name = await createAccount(request);
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto("/sessions");
  await expect(page).toHaveURL(/\/login\?next=%2Fsessions/);

  const form = new CredentialsPage(page);
  await form.fill(name, "a-wrong-password-entirely");
  await expect(page).toHaveURL(/\/login\?error=invalid_credentials/);
  await expect(form.error).toHaveText("Wrong username or password.");

  await form.fill(name, PASSWORD);
  await expect(page).toHaveURL("/sessions");
  await expect(new AppPage(page).thisDevice).toBeVisible();
  await page.goto("/");
  await expect(new AppPage(page).dashboardUsername).toHaveText(name);

  await new AppPage(page).logout.click();
  await expect(page).toHaveURL("/login");
  expect(await refreshCookie(context)).toBeUndefined();
  await context.close();
});

test("a visitor from another site lands on the page without passing the login page", async ({ page, request }) => {
  const name = await createAccount(request);
  await logIn(page, name);
  // A page on another site links here; the SameSite=Strict cookie stays behind
  // on that navigation, and the page loads itself again from this site.
  await page.route("http://elsewhere.test/", (route) =>
    route.fulfill({ contentType: "text/html", body: `<a id="go" href="${baseURL}/sessions">Gatehouse</a>` }),
  );
  await page.goto("http://elsewhere.test/");
  const answers: number[] = [];
  const visited: string[] = [];
  page.on("response", (r) => {
    if (new URL(r.url()).pathname === "/sessions") answers.push(r.status());
  });
  page.on("framenavigated", (frame) => visited.push(new URL(frame.url()).pathname));
  await page.click("#go");
  await expect(page).toHaveURL("/sessions");
  await expect(new AppPage(page).thisDevice).toBeVisible();
  expect(answers, "the landing and its reload from this site").toEqual([200, 200]);
  expect(visited).not.toContain("/login");
});

test("the admin page is for admins: others get 403", async ({ browser, page, request }) => {
  await logIn(page, await createAccount(request));
  const response = await page.goto("/admin");
  expect(response!.status()).toBe(403);
  await expect(page.getByTestId("forbidden")).toContainText("administrators only");
  await expect(new AppPage(page).nav("Admin")).toHaveCount(0);

  const admin = createAdmin(databaseUrl);
  const context = await browser.newContext();
  const adminPage = await context.newPage();
  const app = await logIn(adminPage, admin);
  await app.nav("Admin").click();
  await expect(adminPage.getByTestId("admin-users")).toContainText(admin);
  await expect(adminPage.getByTestId("admin-events")).toContainText("login");
  await context.close();
});

test("changing the password keeps this session and ends the others", async ({ browser, page, request }) => {
  const name = await createAccount(request);
  const app = await logIn(page, name);
  const other = await browser.newContext();
  const otherPage = await other.newPage();
  await logIn(otherPage, name);

  await app.nav("Account").click();
  await page.getByLabel("Current password").fill(PASSWORD);
  await page.getByLabel("New password").fill("tangerine-lighthouse-orbit-31");
  await page.getByTestId("submit").click();
  await expect(page.getByTestId("password-form").getByTestId("notice-message")).toHaveText(/Password changed/);

  await app.nav("Dashboard").click();
  await app.askServer.click();
  await expect(app.answer).toContainText(name);
  await otherPage.reload();
  await expect(otherPage).toHaveURL(/\/login/);
  await other.close();
});

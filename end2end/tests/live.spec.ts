import { expect, test, type WebSocket } from "@playwright/test";
import { shortLivedURL } from "../playwright.config";
import { createAccount, logIn, twoDevices } from "./support";

test("a login on another browser appears live on the dashboard", async ({ browser, page, request }) => {
  const name = await createAccount(request);
  const app = await logIn(page, name);
  await expect(app.liveStatus).toHaveAttribute("data-state", "open");

  const other = await browser.newContext();
  await logIn(await other.newPage(), name);
  const created = app.liveEvents.and(page.locator("[data-type=session_created]"));
  await expect(created.first()).toContainText("new login from Chrome on Linux at 127.0.0.1");
  // The list is redrawn whole; screen readers are told only the newest event.
  await expect(page.locator("[role=status][aria-live=polite]").filter({ hasText: "new login from" })).toHaveCount(1);
  await expect(page.getByTestId("live-events")).not.toHaveAttribute("aria-live", /.*/);
  await other.close();
});

test("the sessions page updates itself when a session appears or ends elsewhere", async ({ browser, page, request }) => {
  const name = await createAccount(request);
  const app = await logIn(page, name);
  await app.nav("Sessions").click();
  await expect(app.sessions).toHaveCount(1);

  const other = await browser.newContext();
  const otherApp = await logIn(await other.newPage(), name);
  await expect(app.sessions).toHaveCount(2);
  await otherApp.logout.click();
  await expect(app.sessions).toHaveCount(1);
  await other.close();
});

test("a session revoked from another browser is logged out there without a reload", async ({ browser, request }) => {
  const { laptopApp, phoneApp, close } = await twoDevices(browser, request);
  const phonePage = phoneApp.page;
  await expect(phoneApp.liveStatus).toHaveAttribute("data-state", "open");
  const phoneLoads = { count: 0 };
  phonePage.on("load", () => (phoneLoads.count += 1));

  await laptopApp.nav("Sessions").click();
  const other = laptopApp.sessions.filter({ has: laptopApp.page.getByTestId("revoke") });
  await other.getByTestId("revoke").click();

  // Nobody touches the phone: its socket closes with 1008, its refresh is refused, it goes to /login.
  await expect(phonePage).toHaveURL(/\/login/, { timeout: 5_000 });
  await expect(phonePage.getByTestId("credentials-form")).toBeVisible();
  expect(phoneLoads.count, "only the login page was loaded").toBe(1);
  await close();
});

test.describe("with ten-second access tokens", () => {
  test.use({ baseURL: shortLivedURL });

  test("after the access token expires the socket comes back on its own", async ({ browser, page, request }) => {
    await page.clock.install();
    const sockets: WebSocket[] = [];
    page.on("websocket", (ws) => sockets.push(ws));
    const name = await createAccount(request);
    const app = await logIn(page, name);
    await expect(app.liveStatus).toHaveAttribute("data-state", "open");
    // The page's clock stops, so nothing refreshes ahead of expiry: the server
    // closes the socket when the token expires (4001), and the client refreshes
    // and reconnects by itself.
    await page.clock.pauseAt(Date.now() + 1_000);
    await expect.poll(() => sockets.length, { timeout: 20_000 }).toBeGreaterThanOrEqual(2);
    expect(sockets[0].isClosed()).toBe(true);
    await expect(app.liveStatus).toHaveAttribute("data-state", "open");

    const other = await browser.newContext({ baseURL: shortLivedURL });
    await logIn(await other.newPage(), name);
    await expect(app.liveEvents.and(page.locator("[data-type=session_created]")).first()).toBeVisible();
    await other.close();
  });
});

import { expect, test, type APIRequestContext, type Page } from "@playwright/test";
import { smtpPort } from "../playwright.config";
import { Inbox, linkIn } from "./inbox";
import { AppPage, CredentialsPage, waitForHydration } from "./pages/app";
import { PASSWORD, uniqueName } from "./support";

const NEW_PASSWORD = "saffron-quarry-lantern-58";
const inbox = new Inbox();

test.beforeAll(async () => inbox.start(smtpPort));
test.afterAll(async () => inbox.stop());

/** An account with a verified address, made through the API and the mailed link. */
async function accountWithAddress(request: APIRequestContext) {
  const username = uniqueName();
  const email = `${username}@example.test`;
  const registered = await request.post("/auth/register", { data: { username, password: PASSWORD, email } });
  expect(registered.status()).toBe(201);
  const { token } = linkIn(await inbox.next(email), "/verify-email");
  expect((await request.post("/auth/email/verify", { data: { token } })).status()).toBe(204);
  // Log the registration's session out: the test logs in through pages.
  const cookie = registered.headers()["set-cookie"].split(";")[0];
  expect((await request.post("/auth/logout", { headers: { cookie } })).status()).toBe(204);
  return { username, email };
}

/** What a mail gateway's link scanner does: fetch the link, twice. */
async function scan(request: APIRequestContext, url: string) {
  for (let i = 0; i < 2; i++) expect((await request.get(url)).status()).toBe(200);
}

async function resetThroughPages(page: Page, request: APIRequestContext, email: string, seen: number) {
  await page.goto("/login");
  await page.getByTestId("forgot-link").click();
  await expect(page).toHaveURL(/\/forgot-password$/);
  await page.getByLabel("E-mail address").fill(email);
  await page.getByTestId("submit").click();
  await expect(page.getByTestId("notice-message")).toHaveText(/on its way/);
  const link = linkIn(await inbox.next(email, seen), "/reset-password");
  await scan(request, link.url);
  await page.goto(link.url);
  await expect(page.getByLabel("Code from the mail")).toHaveValue(link.token);
  await page.getByLabel("New password").fill(NEW_PASSWORD);
  await page.getByTestId("submit").click();
  await expect(page).toHaveURL(/\/login\?notice=password_reset$/);
  await expect(page.getByTestId("notice-message")).toHaveText(/Log in with the new password/);
}

test("a forgotten password is reset by mail, after a link scanner, and the new one logs in", async ({ page, request }) => {
  const { username, email } = await accountWithAddress(request);
  await page.goto("/login");
  await waitForHydration(page);
  await resetThroughPages(page, request, email, 1);
  const form = new CredentialsPage(page);
  await form.fill(username, PASSWORD);
  await expect(form.error).toHaveText(/Wrong username or password/);
  await form.fill(username, NEW_PASSWORD);
  await new AppPage(page).expectDashboardOf(username);
});

test("without JavaScript the reset works through plain forms", async ({ browser, request }) => {
  const { username, email } = await accountWithAddress(request);
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await resetThroughPages(page, request, email, 1);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password", { exact: true }).fill(NEW_PASSWORD);
  await page.getByTestId("submit").click();
  await expect(page).toHaveURL("/");
  await context.close();
});

test("a used link says so and offers a new one", async ({ page, request }) => {
  const { email } = await accountWithAddress(request);
  await resetThroughPages(page, request, email, 1);
  const used = linkIn(inbox.mails.filter((m) => m.to.includes(email)).at(-1)!, "/reset-password");
  await page.goto(used.url);
  await page.getByLabel("New password").fill("another-fine-password-77");
  await page.getByTestId("submit").click();
  await expect(page.getByTestId("error-message")).toHaveText(/does not work any more/);
  await expect(page.getByRole("link", { name: "Ask for a new link" })).toBeVisible();
});

test("an address added on the account page is confirmed through its link", async ({ page, request }) => {
  const username = uniqueName();
  const email = `${username}@example.test`;
  expect((await request.post("/auth/register", { data: { username, password: PASSWORD } })).status()).toBe(201);
  const form = new CredentialsPage(page);
  await form.gotoLogin();
  await form.fill(username, PASSWORD);
  const app = new AppPage(page);
  await app.expectDashboardOf(username);
  await app.nav("Account").click();
  await expect(page.getByTestId("email-status")).toHaveText(/No address yet/);
  await page.getByLabel("New address").fill(email);
  await page.getByTestId("email-submit").click();
  await expect(page.getByTestId("email-section").getByTestId("notice-message")).toHaveText(/on its way/);
  const link = linkIn(await inbox.next(email), "/verify-email");
  await scan(request, link.url);
  await page.goto(link.url);
  await waitForHydration(page);
  await page.getByTestId("submit").click();
  await expect(page.getByTestId("notice-message")).toHaveText(/Your address is confirmed/);
  await page.goto("/account");
  await expect(page.getByTestId("email-status")).toHaveText(`${email} (confirmed)`);
});

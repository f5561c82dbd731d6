import { expect, test, type Browser, type Page } from "@playwright/test";
import { baseURL, shortLivedURL } from "../playwright.config";
import { AppPage, CredentialsPage, waitForHydration } from "./pages/app";
import { createAccount, uniqueName } from "./support";

/**
 * Passkeys need a domain as relying party, so these tests browse
 * http://localhost:PORT (the same server as 127.0.0.1:PORT), with Chromium's
 * virtual authenticator standing in for a platform authenticator.
 */
const localhost = baseURL.replace("127.0.0.1", "localhost");

/** Signs up with the page's authenticator, no password: the dashboard of `username`. */
async function signUpWithPasskey(page: Page, username: string) {
  const form = new CredentialsPage(page);
  await form.gotoRegister();
  await form.username.fill(username);
  await page.getByTestId("passkey-sign-up").click();
  const app = new AppPage(page);
  await app.expectDashboardOf(username);
  return app;
}

async function withAuthenticator(browser: Browser, base = localhost) {
  const context = await browser.newContext({ baseURL: base });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  const credentials = async () => (await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials;
  return { context, page, credentials, cdp, authenticatorId };
}

/** Turns the browser's passkey autofill off for `page`, so only the button signs in. */
async function withoutAutofill(page: Page) {
  await page.addInitScript(() => {
    (window as any).PublicKeyCredential.isConditionalMediationAvailable = async () => false;
  });
}

test("a passkey is added on /account, signs in without a username, and is refused once removed", async ({ browser, request }) => {
  const username = await createAccount(request);
  const { context, page, credentials } = await withAuthenticator(browser);
  const form = new CredentialsPage(page);
  await form.gotoLogin();
  await expect(page.getByLabel("Username")).toHaveAttribute("autocomplete", "username webauthn");
  await form.fill(username, "violet-harbour-quantum-87");
  const app = new AppPage(page);
  await app.expectDashboardOf(username);

  await app.nav("Account").click();
  const section = page.getByTestId("passkeys-section");
  await section.getByLabel("Name for a new passkey").fill("Test key");
  await section.getByTestId("passkey-add").click();
  await expect(section.getByTestId("notice-message")).toHaveText(/Test key/);
  await expect(section.getByTestId("passkey-name")).toHaveValue("Test key");
  expect((await credentials()).filter((c) => c.isResidentCredential)).toHaveLength(1);

  // Autofill: the virtual authenticator answers the username field's
  // conditional request as soon as the login page makes it.
  await app.logout.click();
  await app.expectDashboardOf(username);

  // Renamed and removed; the authenticator still holds the credential, which the server no longer knows.
  await app.nav("Account").click();
  await section.getByTestId("passkey-name").fill("Old key");
  await section.getByTestId("passkey-rename").click();
  await expect(section.getByTestId("notice-message")).toHaveText(/renamed/);
  await section.getByTestId("passkey-remove").click();
  await expect(section.getByTestId("passkey")).toHaveCount(0);
  // Removed: the authenticator still offers the credential, the server refuses it.
  await app.logout.click();
  await expect(page).toHaveURL(/\/login/);
  await expect(page.getByTestId("error-message")).toHaveText(/not accepted/);
  await context.close();
});

test("the button signs in with a passkey where the browser offers no autofill", async ({ browser, request }) => {
  const username = await createAccount(request);
  const { context, page } = await withAuthenticator(browser);
  await withoutAutofill(page);
  const form = new CredentialsPage(page);
  await form.gotoLogin();
  await form.fill(username, "violet-harbour-quantum-87");
  const app = new AppPage(page);
  await app.expectDashboardOf(username);
  await app.nav("Account").click();
  await page.getByTestId("passkey-add").click();
  await expect(page.getByTestId("passkeys-section").getByTestId("passkey")).toHaveCount(1);
  await app.logout.click();
  await expect(page).toHaveURL(/\/login/);
  await waitForHydration(page);
  await page.getByTestId("passkey-login").click();
  await app.expectDashboardOf(username);
  await context.close();
});

test("a passkey copied to another authenticator is refused while the original goes on", async ({ browser, request }) => {
  const username = await createAccount(request);
  const { context, page, credentials } = await withAuthenticator(browser);
  await withoutAutofill(page);
  const form = new CredentialsPage(page);
  await form.gotoLogin();
  await form.fill(username, "violet-harbour-quantum-87");
  const app = new AppPage(page);
  await app.expectDashboardOf(username);
  await app.nav("Account").click();
  await page.getByTestId("passkey-add").click();
  await expect(page.getByTestId("passkeys-section").getByTestId("passkey")).toHaveCount(1);
  // The key as it is now, before it signs in: its counter will move past this copy's.
  const [original] = await credentials();
  const signIn = async (target: Page) => {
    await target.goto("/login");
    await waitForHydration(target);
    await target.getByTestId("passkey-login").click();
  };
  await app.logout.click();
  await expect(page).toHaveURL(/\/login/);
  await signIn(page);
  await app.expectDashboardOf(username);

  const copy = await withAuthenticator(browser);
  await withoutAutofill(copy.page);
  await copy.cdp.send("WebAuthn.addCredential", { authenticatorId: copy.authenticatorId, credential: original });
  await signIn(copy.page);
  await expect(copy.page.getByTestId("error-message")).toHaveText(/not accepted/);
  await expect(copy.page).toHaveURL(/\/login/);
  await copy.context.close();

  // The original's counter is ahead of what the server saw: it still signs in.
  await app.logout.click();
  await expect(page).toHaveURL(/\/login/);
  await signIn(page);
  await app.expectDashboardOf(username);
  await context.close();
});

test("signing up with a passkey makes an account with no password", async ({ browser, request }) => {
  const username = uniqueName("pk");
  const { context, page, credentials } = await withAuthenticator(browser);
  const app = await signUpWithPasskey(page, username);
  expect((await credentials()).filter((c) => c.isResidentCredential)).toHaveLength(1);
  // No password signs in to it; the passkey does, through the login page's autofill.
  const login = await request.post("/auth/login", { data: { username, password: "violet-harbour-quantum-87" } });
  expect(login.status()).toBe(401);
  await app.nav("Account").click();
  await expect(page.getByTestId("passkeys-section").getByTestId("passkey")).toHaveCount(1);
  await page.getByTestId("passkey-remove").click();
  await expect(page.getByTestId("passkeys-section").getByTestId("error-message")).toHaveText(/last way to sign in/);
  await app.logout.click();
  await app.expectDashboardOf(username);
  await context.close();
});

test("without JavaScript the login page shows no passkey button and the password form works", async ({ browser, request }) => {
  const username = await createAccount(request);
  const context = await browser.newContext({ baseURL: localhost, javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto("/register");
  await expect(page.getByTestId("passkey-sign-up")).toHaveCount(0);
  await expect(page.getByLabel("Username")).toBeVisible();
  await page.goto("/login");
  await expect(page.getByTestId("passkey-login")).toHaveCount(0);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password", { exact: true }).fill("violet-harbour-quantum-87");
  await page.getByTestId("submit").click();
  await expect(page).toHaveURL(`${localhost}/`);
  await context.close();
});

test("a passkey confirms it is you before a sensitive change, which then goes through", async ({ browser }) => {
  test.setTimeout(90_000);
  // This server's sign-ins count as recent for 30 seconds.
  const { context, page, credentials } = await withAuthenticator(browser, shortLivedURL.replace("127.0.0.1", "localhost"));
  const username = uniqueName("pk");
  const app = await signUpWithPasskey(page, username);
  await page.waitForTimeout(31_000);

  // Its first password: a sensitive change like any password change.
  await app.nav("Account").click();
  await page.getByLabel("New password").fill("a-first-password-for-this-87");
  await page.getByTestId("password-form").getByTestId("submit").click();
  const dialog = page.getByTestId("reauth-dialog");
  await expect(dialog).toBeVisible();
  await dialog.getByTestId("reauth-passkey").click();
  await expect(dialog).toBeHidden();
  await expect(page.getByTestId("password-form").getByTestId("notice-message")).toContainText("Password changed");
  const login = await page.request.post("/auth/login", { data: { username, password: "a-first-password-for-this-87" } });
  expect(login.status()).toBe(200);
  expect(await credentials()).toHaveLength(1);
  await context.close();
});

import { test, expect, type Browser, type Page } from "@playwright/test";
import * as OTPAuth from "otpauth";
import { shortLivedURL, shortDatabaseUrl } from "../playwright.config";
import { CodeStep, CredentialsPage, ReauthStep, TwoFactorPage, waitForHydration } from "./pages/app";
import { createAccount, createAdmin, logIn, PASSWORD, uniqueName } from "./support";

/** A real authenticator: the codes an app would show for `secret`. */
function authenticator(secret: string) {
  return new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), digits: 6, period: 30, algorithm: "SHA1" });
}

/**
 * The next step's code: the server accepts one step of skew, and a code is
 * accepted once, so a code of a step not used yet works at once.
 */
function nextCode(secret: string) {
  return authenticator(secret).generate({ timestamp: Date.now() + 30_000 });
}

/** Sets up the app on `/two-factor` of a logged-in page: its secret and recovery codes. */
async function setUpApp(page: Page) {
  const twoFactor = new TwoFactorPage(page);
  await twoFactor.goto();
  await expect(twoFactor.status).toContainText("Off");
  await twoFactor.begin.click();
  await expect(twoFactor.qr).toBeVisible();
  const secret = (await twoFactor.secret.textContent())!.trim();
  await twoFactor.code.fill(authenticator(secret).generate());
  await twoFactor.confirm.click();
  await expect(twoFactor.recoveryCodes).toHaveCount(10);
  const codes = await twoFactor.recoveryCodes.allTextContents();
  await expect(twoFactor.status).toContainText("On");
  await expect(twoFactor.recoveryLeft).toHaveText("Recovery codes left: 10");
  return { secret, codes };
}

/** The password step of a sign-in through `/login`; with JavaScript, once the page has hydrated. */
async function passwordStep(page: Page, username: string, hydrated = false) {
  if (hydrated) await new CredentialsPage(page).gotoLogin();
  else await page.goto("/login");
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByTestId("submit").click();
}

/** A page in a browser context without JavaScript. */
async function withoutScript(browser: Browser) {
  const context = await browser.newContext({ javaScriptEnabled: false });
  return { context, page: await context.newPage() };
}

async function logOut(page: Page) {
  await page.getByTestId("logout").click();
  await expect(page).toHaveURL(/\/login/);
}

test("an authenticator app is set up, then sign-in asks for its code", async ({ page, request }) => {
  const username = await createAccount(request);
  await logIn(page, username);
  const { secret } = await setUpApp(page);
  await logOut(page);

  await passwordStep(page, username, true);
  const step = new CodeStep(page);
  await expect(step.code).toBeVisible();
  await expect(page).toHaveURL(/\/login/);
  // No session before the second step.
  expect((await page.context().cookies()).some((c) => c.name.endsWith("gatehouse_refresh"))).toBe(false);
  await step.code.fill("000000");
  await step.submit.click();
  await expect(page.getByTestId("code-form").getByTestId("error-message")).toContainText("not right");
  await step.code.fill(nextCode(secret));
  await step.submit.click();
  await expect(page.getByTestId("dashboard-username")).toHaveText(username);
});

test("a recovery code signs in once, without JavaScript too", async ({ browser, page, request }) => {
  const username = await createAccount(request);
  await logIn(page, username);
  const { codes } = await setUpApp(page);
  await logOut(page);

  await passwordStep(page, username, true);
  const step = new CodeStep(page);
  await step.code.fill(codes[0].toUpperCase());
  await step.submit.click();
  await expect(page.getByTestId("dashboard-username")).toHaveText(username);
  await new TwoFactorPage(page).goto();
  await expect(new TwoFactorPage(page).recoveryLeft).toHaveText("Recovery codes left: 9");
  await page.goto("/account");
  await expect(page.getByTestId("two-step-summary")).toContainText("Recovery codes left: 9.");

  const { context: noScript, page: plain } = await withoutScript(browser);
  await passwordStep(plain, username);
  await expect(plain).toHaveURL(/\/login-code/);
  const plainStep = new CodeStep(plain);
  await plainStep.code.fill(codes[0]);
  await plainStep.submit.click();
  await expect(plain).toHaveURL(/\/login-code\?error=invalid_code/);
  await expect(plain.getByTestId("code-form").getByTestId("error-message")).toContainText("not right");
  await plainStep.code.fill(codes[1]);
  await plainStep.submit.click();
  await expect(plain.getByTestId("dashboard-username")).toHaveText(username);
  await noScript.close();
});

test("without JavaScript the app is set up with the server's QR code and the codes are shown once", async ({ browser, request }) => {
  const username = await createAccount(request);
  const { context: noScript, page } = await withoutScript(browser);
  await passwordStep(page, username);
  const twoFactor = new TwoFactorPage(page);
  await twoFactor.goto(false);
  await twoFactor.begin.click();
  await expect(page).toHaveURL(/\/two-factor$/);
  await expect(twoFactor.qr).toBeVisible();
  const secret = (await twoFactor.secret.textContent())!.trim();
  await twoFactor.code.fill(authenticator(secret).generate());
  await twoFactor.confirm.click();
  await expect(twoFactor.recoveryCodes).toHaveCount(10);
  await page.getByRole("link", { name: "Done" }).click();
  await expect(twoFactor.status).toContainText("On");
  await noScript.close();
});

test.describe("after the re-auth window", () => {
  // This server's sign-ins count as recent for 30 seconds only.
  test.use({ baseURL: shortLivedURL });

  test("a password change asks to confirm it is you, then goes through as typed", async ({ page, request }) => {
    test.setTimeout(90_000);
    const username = await createAccount(request);
    await logIn(page, username);
    await page.waitForTimeout(31_000);
    await page.goto("/account");
    await waitForHydration(page);
    const newPassword = "a-much-longer-passphrase-42";
    await page.getByLabel("Current password").fill(PASSWORD);
    await page.getByLabel("New password").fill(newPassword);
    await page.getByTestId("submit").click();
    const reauth = new ReauthStep(page);
    await expect(reauth.dialog).toBeVisible();
    await reauth.password.fill("wrong password entirely");
    await reauth.submit.click();
    await expect(reauth.dialog.getByTestId("error-message")).toContainText("Wrong");
    await reauth.password.fill(PASSWORD);
    await reauth.submit.click();
    await expect(reauth.dialog).toBeHidden();
    await expect(page.getByTestId("password-form").getByTestId("notice-message")).toContainText("Password changed");
    await logOut(page);
    await logIn(page, username, newPassword);
  });

  test("without JavaScript the re-auth page posts back and completes the form", async ({ browser, request }) => {
    test.setTimeout(90_000);
    const username = await createAccount(request);
    const { context: noScript, page } = await withoutScript(browser);
    await passwordStep(page, username);
    await page.waitForTimeout(31_000);
    await page.goto("/account");
    const newPassword = "another-long-passphrase-77";
    await page.getByLabel("Current password").fill(PASSWORD);
    await page.getByLabel("New password").fill(newPassword);
    await page.getByTestId("submit").click();
    const reauth = new ReauthStep(page);
    await expect(reauth.page_).toBeVisible();
    await reauth.password.fill(PASSWORD);
    await reauth.submit.click();
    await expect(page).toHaveURL(/\/account\?notice=password_changed/);
    await noScript.close();
    const check = await request.post("/auth/login", { data: { username, password: newPassword } });
    expect(check.status()).toBe(200);
  });

  test("an admin without a second factor is sent to set one up first", async ({ page }) => {
    const admin = createAdmin(shortDatabaseUrl, uniqueName("admin"));
    await passwordStep(page, admin, true);
    await expect(page).toHaveURL(/\/two-factor$/);
    await page.goto("/admin");
    await expect(page).toHaveURL(/\/two-factor$/);
    const { secret } = await setUpApp(page);
    expect(secret.length).toBeGreaterThan(0);
    await page.goto("/admin");
    await expect(page).toHaveURL(/\/admin$/);
  });
});

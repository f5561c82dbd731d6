import { expect, type Locator, type Page } from "@playwright/test";

/** Waits until the WASM client has hydrated the page. */
export async function waitForHydration(page: Page) {
  await page.locator("body[data-hydrated='true']").waitFor({ state: "attached" });
}

/** `/login` and `/register`: the same form. */
export class CredentialsPage {
  readonly username: Locator;
  readonly password: Locator;
  readonly submit: Locator;
  readonly error: Locator;
  readonly strength: Locator;

  constructor(readonly page: Page) {
    this.username = page.getByLabel("Username");
    this.password = page.getByLabel("Password", { exact: true });
    this.submit = page.getByTestId("submit");
    this.error = page.getByTestId("error-message");
    this.strength = page.getByTestId("strength-label");
  }

  async gotoLogin(next?: string) {
    const response = await this.page.goto(next ? `/login?next=${encodeURIComponent(next)}` : "/login");
    await waitForHydration(this.page);
    return response;
  }

  async gotoRegister() {
    const response = await this.page.goto("/register");
    await waitForHydration(this.page);
    return response;
  }

  async fill(username: string, password: string) {
    await this.username.fill(username);
    await this.password.fill(password);
    await this.submit.click();
  }
}

/** What every protected page shows, and the dashboard. */
export class AppPage {
  readonly headerUsername: Locator;
  readonly logout: Locator;
  readonly dashboardUsername: Locator;
  readonly role: Locator;
  readonly session: Locator;
  readonly countdown: Locator;
  readonly askServer: Locator;
  readonly answer: Locator;
  readonly sessions: Locator;
  readonly thisDevice: Locator;
  readonly logoutAll: Locator;
  readonly liveStatus: Locator;
  readonly liveEvents: Locator;

  constructor(readonly page: Page) {
    this.headerUsername = page.getByTestId("header-username");
    this.logout = page.getByTestId("logout");
    this.dashboardUsername = page.getByTestId("dashboard-username");
    this.role = page.getByTestId("dashboard-role");
    this.session = page.getByTestId("dashboard-session");
    this.countdown = page.getByTestId("token-countdown");
    this.askServer = page.getByTestId("ask-server");
    this.answer = page.getByTestId("status-message");
    this.sessions = page.getByTestId("session");
    this.thisDevice = page.getByTestId("this-device");
    this.logoutAll = page.getByTestId("logout-all");
    this.liveStatus = page.getByTestId("live-status");
    this.liveEvents = page.getByTestId("live-events").locator("li");
  }

  nav(name: "Dashboard" | "Sessions" | "Account" | "Admin") {
    return this.page.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true });
  }

  async expectDashboardOf(username: string) {
    await expect(this.page).toHaveURL(/\/$/);
    await expect(this.dashboardUsername).toHaveText(username);
    await expect(this.headerUsername).toHaveText(username);
  }
}

/** `/two-factor`: the authenticator app and recovery codes. */
export class TwoFactorPage {
  readonly begin: Locator;
  readonly secret: Locator;
  readonly qr: Locator;
  readonly code: Locator;
  readonly confirm: Locator;
  readonly status: Locator;
  readonly recoveryCodes: Locator;
  readonly recoveryLeft: Locator;
  readonly renew: Locator;
  readonly remove: Locator;

  constructor(readonly page: Page) {
    this.begin = page.getByTestId("totp-begin");
    this.secret = page.getByTestId("totp-secret");
    this.qr = page.getByTestId("totp-qr").locator("svg");
    this.code = page.getByLabel("The six-digit code the app shows now");
    this.confirm = page.getByTestId("totp-confirm");
    this.status = page.getByTestId("totp-status");
    this.recoveryCodes = page.getByTestId("recovery-codes").locator("li");
    this.recoveryLeft = page.getByTestId("recovery-left");
    this.renew = page.getByTestId("renew-codes");
    this.remove = page.getByTestId("totp-remove");
  }

  async goto(hydrated = true) {
    await this.page.goto("/two-factor");
    if (hydrated) await waitForHydration(this.page);
  }
}

/** The second step of a sign-in: in place on `/login`, or `/login-code` without JavaScript. */
export class CodeStep {
  readonly code: Locator;
  readonly submit: Locator;

  constructor(readonly page: Page) {
    this.code = page.getByLabel("Code", { exact: true });
    this.submit = page.getByTestId("code-submit");
  }
}

/** The re-auth step: a dialog with JavaScript, a page without. */
export class ReauthStep {
  readonly dialog: Locator;
  readonly page_: Locator;
  readonly password: Locator;
  readonly submit: Locator;

  constructor(readonly page: Page) {
    this.dialog = page.getByTestId("reauth-dialog");
    this.page_ = page.getByTestId("reauth-page");
    this.password = page.getByLabel("Password", { exact: true });
    this.submit = page.getByTestId("reauth-submit");
  }
}

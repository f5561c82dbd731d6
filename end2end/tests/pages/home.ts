import { expect, type Locator, type Page } from "@playwright/test";

/** The public start page. */
export class HomePage {
  readonly status: Locator;
  readonly checkButton: Locator;
  readonly checkCount: Locator;

  constructor(readonly page: Page) {
    this.status = page.getByTestId("client-status");
    this.checkButton = page.getByTestId("client-check");
    this.checkCount = page.getByTestId("client-check-count");
  }

  async goto() {
    return this.page.goto("/");
  }

  /** Hydration is done when the client has replaced the server's status text. */
  async waitForHydration() {
    await expect(this.status).toHaveText("Client: interactive");
  }
}

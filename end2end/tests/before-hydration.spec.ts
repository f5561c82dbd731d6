import { expect, test, type Page } from "@playwright/test";
import { waitForHydration } from "./pages/app";
import { createAccount, logIn, PASSWORD, uniqueName } from "./support";

/**
 * A person types into a form before the WASM has hydrated the page (a slow
 * phone or network makes that the common case). What they typed must survive
 * hydration, and a submit must go through: before hydration as the no-JS
 * form post, after it through the client. Twenty tries of each, none lost.
 */
const TRIES = 20;
const WASM_DELAY_MS = 700;

/** Holds every WASM download back: the page is there, its client is not yet. */
async function delayWasm(page: Page) {
  await page.route(/\.wasm$/, async (route) => {
    await new Promise((resolve) => setTimeout(resolve, WASM_DELAY_MS));
    await route.continue();
  });
}

type When = "before hydration" | "typed before, sent after hydration" | "as soon as the page arrives";
const WHEN: When[] = ["before hydration", "typed before, sent after hydration", "as soon as the page arrives"];

/** Opens `path` and fills it by `fill`, then sends it, at the moment `when` names. */
async function fillAndSend(page: Page, path: string, when: When, fill: () => Promise<void>) {
  await page.goto(path, { waitUntil: "commit" });
  await fill();
  if (when === "typed before, sent after hydration") await waitForHydration(page);
  await page.getByTestId("submit").click();
}

for (const when of WHEN) {
  test.describe(`forms sent ${when}`, () => {
    test.beforeEach(async ({ page }) => {
      if (when !== "as soon as the page arrives") await delayWasm(page);
    });

    test("log in", async ({ page, context, request }) => {
      test.setTimeout(TRIES * 5_000);
      for (let i = 0; i < TRIES; i++) {
        const name = await createAccount(request);
        await fillAndSend(page, "/login", when, async () => {
          await page.getByLabel("Username").fill(name);
          await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
        });
        await expect(page.getByTestId("header-username"), `try ${i + 1}`).toHaveText(name);
        await context.clearCookies();
      }
    });

    test("register", async ({ page, context }) => {
      test.setTimeout(TRIES * 5_000);
      for (let i = 0; i < TRIES; i++) {
        const name = uniqueName("early");
        await fillAndSend(page, "/register", when, async () => {
          await page.getByLabel("Username").fill(name);
          await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
        });
        await expect(page.getByTestId("header-username"), `try ${i + 1}`).toHaveText(name);
        await context.clearCookies();
      }
    });

    test("change the password", async ({ page, request }) => {
      test.setTimeout(TRIES * 5_000);
      const other = "amber-lantern-voyage-42";
      await page.unrouteAll();
      await logIn(page, await createAccount(request));
      if (when !== "as soon as the page arrives") await delayWasm(page);
      for (let i = 0; i < TRIES; i++) {
        const [current, next] = i % 2 === 0 ? [PASSWORD, other] : [other, PASSWORD];
        await fillAndSend(page, "/account", when, async () => {
          await page.getByLabel("Current password").fill(current);
          await page.getByLabel("New password").fill(next);
        });
        await expect(page.getByText("Password changed."), `try ${i + 1}`).toBeVisible();
      }
    });
  });
}

import { expect, test } from "@playwright/test";
import { CredentialsPage, waitForHydration } from "./pages/app";

test("the app hydrates: the strength meter answers typing", async ({ page }) => {
  const errors: string[] = [];
  page.on("pageerror", (err) => errors.push(err.message));

  const form = new CredentialsPage(page);
  const response = await form.gotoRegister();
  expect(response?.status()).toBe(200);
  await expect(form.strength).toHaveText("Strength: enter a password");

  // Only the WASM client rates passwords in the page: the server sent a static meter.
  await form.password.fill("password");
  await expect(form.strength).toHaveText("Strength: 0 of 4, too weak");
  await form.password.fill("violet-harbour-quantum-87");
  await expect(form.strength).toHaveText(/Strength: [34] of 4, good/);

  expect(errors).toEqual([]);
});

test("the server sends the page before any script runs", async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto("/login");
  await expect(page.getByRole("heading", { name: "Log in" })).toBeVisible();
  await expect(page.locator("body[data-hydrated]")).toHaveCount(0);
  await context.close();
});

test("HTML and JS are revalidated, the bundle is compressed, the WASM cached for a year", async ({ request }) => {
  const html = await request.get("/login");
  expect(html.headers()["cache-control"]).toBe("no-cache");
  const body = await html.text();

  const assets = [...body.matchAll(/\/pkg\/[^"']+\.(?:wasm|js|css)/g)].map((m) => m[0]);
  const wasm = assets.find((a) => a.endsWith(".wasm"));
  const js = assets.find((a) => a.endsWith(".js"));
  expect(wasm, `a hashed .wasm in ${assets}`).toMatch(/\/pkg\/gatehouse\.[\w-]+\.wasm$/);
  expect(js, `a hashed .js in ${assets}`).toMatch(/\/pkg\/gatehouse\.[\w-]+\.js$/);

  for (const asset of [wasm!, js!]) {
    for (const encoding of ["br", "gzip"]) {
      const res = await request.get(asset, { headers: { "accept-encoding": encoding } });
      expect(res.status(), asset).toBe(200);
      expect(res.headers()["content-encoding"], `${asset} with ${encoding}`).toBe(encoding);
      // The JS names the lazily loaded chunks, which --split renames after
      // the JS's own name was fixed; so it is revalidated, the rest is not.
      const cache = asset.endsWith(".js") ? "no-cache" : "public, max-age=31536000, immutable";
      expect(res.headers()["cache-control"], asset).toBe(cache);
    }
  }
  const again = await request.get(js!, { headers: { "if-modified-since": new Date().toUTCString() } });
  expect(again.status(), "an unchanged JS file is a 304").toBe(304);
});

test("unknown pages answer 404 with a page", async ({ page }) => {
  const response = await page.goto("/no-such-page");
  expect(response?.status()).toBe(404);
  await expect(page.getByRole("heading", { name: "Page not found" })).toBeVisible();
  await waitForHydration(page);
});

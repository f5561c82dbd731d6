import { expect, test } from "@playwright/test";
import { HomePage } from "./pages/home";

test("the home page hydrates and answers clicks", async ({ page }) => {
  const errors: string[] = [];
  page.on("pageerror", (err) => errors.push(err.message));

  const home = new HomePage(page);
  const response = await home.goto();
  expect(response?.status()).toBe(200);
  await home.waitForHydration();

  // Only the WASM client can handle this click: the server sent a plain button.
  await home.checkButton.click();
  await expect(home.checkCount).toHaveText("The client answered once.");
  await home.checkButton.click();
  await expect(home.checkCount).toHaveText("The client answered 2 times.");

  expect(errors).toEqual([]);
});

test("the server sends the page before any script runs", async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto("/");
  await expect(page.getByRole("heading", { name: "Gatehouse" })).toBeVisible();
  await expect(page.getByTestId("client-status")).toHaveText("Client: server-rendered");
  await context.close();
});

test("HTML is revalidated, the bundle is compressed and cached for a year", async ({ request }) => {
  const html = await request.get("/");
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
      expect(res.headers()["cache-control"]).toBe("public, max-age=31536000, immutable");
    }
  }
});

test("unknown pages answer 404 with a page", async ({ page }) => {
  const response = await page.goto("/no-such-page");
  expect(response?.status()).toBe(404);
  await expect(page.getByRole("heading", { name: "Page not found" })).toBeVisible();
});

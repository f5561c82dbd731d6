// Rolling an instance: two servers on one PostgreSQL database behind a load
// balancer (a TCP proxy here). The instance holding a browser's live socket
// gets SIGTERM; the browser must land on the other one without a login.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { expect, test } from "@playwright/test";
import { drainingPorts, serverBinary, serverEnv } from "../playwright.config";
import { createAccount, logIn, uniqueName } from "./support";

const root = path.resolve(__dirname, "../..");
const postgresAdmin = process.env.GATEHOUSE_TEST_POSTGRES ?? "postgres://postgres@127.0.0.1:5432/postgres";
const [firstPort, secondPort, balancerPort] = [drainingPorts, drainingPorts + 1, drainingPorts + 2];
const balancerURL = `http://127.0.0.1:${balancerPort}`;

/** Sends new connections to one instance at a time; each connection stays where it was sent. */
class Balancer {
  target: number;
  /** The first line of each request, by the port it went to. */
  readonly requests = new Map<number, string[]>();
  private readonly server: net.Server;

  constructor(target: number) {
    this.target = target;
    this.server = net.createServer((client) => {
      const port = this.target;
      const upstream = net.connect(port, "127.0.0.1");
      client.once("data", (first) => {
        const line = first.toString("latin1").split("\r\n", 1)[0];
        this.requests.set(port, [...(this.requests.get(port) ?? []), line]);
      });
      client.pipe(upstream).pipe(client);
      const close = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on("error", close).on("close", close);
      upstream.on("error", close).on("close", close);
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(balancerPort, "127.0.0.1", resolve));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  socketsOpenedOn(port: number): number {
    return (this.requests.get(port) ?? []).filter((line) => line.startsWith("GET /ws?")).length;
  }
}

function startInstance(port: number, databaseUrl: string): ChildProcess {
  return spawn(path.join(root, serverBinary), ["serve"], {
    cwd: root,
    env: { ...process.env, ...serverEnv(port, databaseUrl) },
    stdio: ["ignore", "ignore", "inherit"],
  });
}

async function waitUntilReady(port: number) {
  await expect(async () => {
    const response = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(response.status).toBe(200);
  }).toPass({ timeout: 30_000 });
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once("exit", (code) => resolve(code));
  });
}

test.describe("two instances on PostgreSQL behind a load balancer", () => {
  test.use({ baseURL: balancerURL });

  const database = uniqueName("gatehouse_e2e").replace(/-/g, "_");
  const databaseUrl = Object.assign(new URL(postgresAdmin), { pathname: `/${database}` }).toString();
  const balancer = new Balancer(firstPort);
  let first: ChildProcess;
  let second: ChildProcess;

  test.beforeAll(async () => {
    execFileSync("psql", [postgresAdmin, "-v", "ON_ERROR_STOP=1", "-q", "-c", `CREATE DATABASE ${database}`]);
    first = startInstance(firstPort, databaseUrl);
    await waitUntilReady(firstPort);
    // Migrations are applied by the first; the second finds them done.
    second = startInstance(secondPort, databaseUrl);
    await waitUntilReady(secondPort);
    await balancer.listen();
  });

  test.afterAll(async () => {
    await balancer.close();
    for (const child of [first, second]) {
      if (child && child.exitCode === null) {
        child.kill("SIGKILL");
        await exited(child);
      }
    }
    execFileSync("psql", [postgresAdmin, "-q", "-c", `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`]);
  });

  test("SIGTERM to the instance holding the dashboard's socket: the browser reconnects to the other, signed in", async ({
    browser,
    page,
    request,
  }) => {
    const name = await createAccount(request);
    const app = await logIn(page, name);
    await expect(app.liveStatus).toHaveAttribute("data-state", "open");
    expect(balancer.socketsOpenedOn(firstPort)).toBe(1);
    const loads = { count: 0 };
    page.on("load", () => (loads.count += 1));

    // The load balancer sends new connections to the second instance, then
    // the first is told to stop, as a rolling deploy does.
    balancer.target = secondPort;
    first.kill("SIGTERM");
    expect(await exited(first), "the drained instance exits 0").toBe(0);

    await expect.poll(() => balancer.socketsOpenedOn(secondPort), { timeout: 15_000 }).toBe(1);
    await expect(app.liveStatus).toHaveAttribute("data-state", "open");
    await app.expectDashboardOf(name);
    expect(loads.count, "no page was loaded again").toBe(0);

    // The socket on the second instance is live: a login elsewhere shows up.
    const other = await browser.newContext({ baseURL: balancerURL });
    await logIn(await other.newPage(), name);
    await expect(app.liveEvents.and(page.locator("[data-type=session_created]")).first()).toContainText("new login from");
    await other.close();
  });
});

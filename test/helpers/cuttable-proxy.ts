/** A TCP proxy on a loopback port that can cut every connection through it: a network partition of one path. */
import net from 'node:net';

/** A TCP proxy on a loopback port that can cut every connection through it (a network partition). */
export class CuttableProxy {
  private readonly sockets = new Set<net.Socket>();
  private cut = false;
  private constructor(private readonly server: net.Server, readonly port: number) {}

  static async start(targetPort: number): Promise<CuttableProxy> {
    const holder: { proxy?: CuttableProxy } = {};
    const server = net.createServer((client) => {
      const proxy = holder.proxy!;
      if (proxy.cut) return void client.destroy();
      const upstream = net.connect(targetPort, '127.0.0.1');
      for (const s of [client, upstream]) {
        proxy.sockets.add(s);
        s.on('close', () => proxy.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    holder.proxy = new CuttableProxy(server, (server.address() as net.AddressInfo).port);
    return holder.proxy;
  }

  /** Drop every connection and refuse new ones until {@link heal}. */
  partition(): void {
    this.cut = true;
    for (const s of this.sockets) s.destroy();
  }

  heal(): void {
    this.cut = false;
  }

  async close(): Promise<void> {
    this.partition();
    await new Promise((resolve) => this.server.close(resolve));
  }
}


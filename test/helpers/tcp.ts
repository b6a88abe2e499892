/** Loopback TCP checks for tests that start servers of their own (sshd, HAProxy). */
import net from 'node:net';

/** True when a TCP connection to 127.0.0.1:`port` is accepted. */
export async function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

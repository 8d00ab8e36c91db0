// WebSocket echo backend for the ws scenario (test/helpers/ws.ts's server).
// Usage: node --import tsx bench/peers/ws-echo.ts   (prints "listening <port>")
import { wsEchoServer } from '../../test/helpers/ws.ts';

const s = await wsEchoServer();
process.stdout.write(`listening ${s.port}\n`);
process.on('SIGTERM', () => process.exit(0));

// postbuild: tsc emits only compiled TypeScript, so the dashboard's static files (HTML, JS,
// CSS) are copied next to the compiled feed module that serves them.
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const from = join(root, 'src/primary/admin/dashboard');
const to = join(root, 'dist/primary/admin/dashboard');
mkdirSync(to, { recursive: true });
for (const f of readdirSync(from)) if (/\.(html|js|css)$/.test(f)) copyFileSync(join(from, f), join(to, f));

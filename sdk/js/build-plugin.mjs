// Bundle a JS plugin with the SDK (rolldown) and turn it into a Chard
// component (componentize-js). Usage: node build-plugin.mjs [--http] ENTRY.js OUT.wasm
import { mkdtemp, rm, writeFile, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rolldown } from 'rolldown';
import { componentize } from '@bytecodealliance/componentize-js';

const cli = process.argv.slice(2);
const http = cli[0] === '--http';
const [entryArg, outArg] = http ? cli.slice(1) : cli;
if (!entryArg || !outArg) {
  console.error('usage: node build-plugin.mjs [--http] ENTRY.js OUT.wasm');
  process.exit(2);
}
const sdkDir = dirname(fileURLToPath(import.meta.url));
const root = resolve(sdkDir, '..', '..');
const entry = resolve(entryArg);
const out = resolve(outArg);

const work = await mkdtemp(join(tmpdir(), 'chard-js-'));
try {
  const main = join(work, 'main.js');
  await writeFile(
    main,
    // --http: fetch() follows redirects (sdk/js/fetch.js).
    (http ? `import ${JSON.stringify(join(sdkDir, 'fetch.js'))};\n` : '') +
      `import * as plugin from ${JSON.stringify(entry)};\n` +
      `import { exportTasks } from 'chard';\n` +
      `export const tasks = exportTasks(plugin);\n`,
  );
  const bundle = await rolldown({
    input: main,
    platform: 'neutral',
    resolve: { alias: { chard: join(sdkDir, 'chard.js') } },
    external: [/^chard:/, /^wasi:/],
    logLevel: 'warn',
  });
  const { output } = await bundle.generate({ format: 'esm' });
  await bundle.close();
  const bundled = join(work, 'plugin.js');
  await writeFile(bundled, output[0].code);

  const { component } = await componentize({
    sourcePath: bundled,
    witPath: join(root, 'wit'),
    worldName: 'plugin',
    // --http: `fetch()` works (over wasi:http/outgoing-handler, for the
    // origins the manifest grants). Opt-in: the http feature imports
    // wasi:http whether the plugin fetches or not. A task plugin serves no
    // HTTP, so never fetch-event.
    disableFeatures: http ? ['fetch-event'] : ['http', 'fetch-event'],
  });
  await writeFile(`${out}.tmp`, component);
  await rename(`${out}.tmp`, out);
} finally {
  await rm(work, { recursive: true, force: true });
}

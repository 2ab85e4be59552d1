// Bundle a JS plugin with the SDK (rolldown) and turn it into a Chard
// component (componentize-js). Usage: node build-plugin.mjs ENTRY.js OUT.wasm
import { mkdtemp, rm, writeFile, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rolldown } from 'rolldown';
import { componentize } from '@bytecodealliance/componentize-js';

const [entryArg, outArg] = process.argv.slice(2);
if (!entryArg || !outArg) {
  console.error('usage: node build-plugin.mjs ENTRY.js OUT.wasm');
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
    witPath: join(root, 'wit', 'v0.1'),  // 0.1 world until this SDK moves to wit/chard.wit (0.2)
    worldName: 'plugin',
    // No fetch()/HTTP in tasks: the worker grants no network anyway.
    disableFeatures: ['http', 'fetch-event'],
  });
  await writeFile(`${out}.tmp`, component);
  await rename(`${out}.tmp`, out);
} finally {
  await rm(work, { recursive: true, force: true });
}

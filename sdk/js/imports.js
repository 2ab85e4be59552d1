// Calls into the worker's imports (`chard:task/progress`, `canvas`,
// `keyvalue`), made in one place. `chard.js` hands the real imports over with
// `bindImports`; tests hand fakes. A call the worker refuses (a capability the
// manifest does not grant, a store that is down, a malformed signature) comes
// back as the `err` of a WIT result, which componentize-js throws; it is
// rethrown as `HostError` (a `Failure`), so an uncaught one ends the job as
// FAILURE with the worker's message, which names the manifest key to add.

import { HostError } from './outcomes.js';

const bound = {};

/** `{ progress, canvas, keyvalue }`: the import modules, by interface. */
export function bindImports(imports) {
  Object.assign(bound, imports);
}

function messageOf(thrown) {
  if (typeof thrown === 'string') return thrown;
  if (thrown && typeof thrown.payload === 'string') return thrown.payload;
  if (thrown && typeof thrown.message === 'string') return thrown.message;
  return String(thrown);
}

/** `imports[iface][fn](...args)`; a refusal is thrown as `HostError`. */
export function call(iface, fn, ...args) {
  const module = bound[iface];
  if (!module) throw new HostError(`chard:task/${iface} is not available in this build of the plugin`);
  try {
    return module[fn](...args);
  } catch (thrown) {
    throw new HostError(messageOf(thrown));
  }
}

// Progress a client can poll while the job runs: Celery's custom states.
// `updateState('PROGRESS', { done: 3, total: 10 })` is Celery's
// `self.update_state(state=..., meta=...)`: a Python client sees
// `AsyncResult(id).state == 'PROGRESS'` and `.info == meta`. The worker
// coalesces writes (at most one per 100 ms per job, the last wins), so a task
// may call it in a tight loop. Needs `progress = true` under [capabilities].

import { call } from './imports.js';

/** Publish `state` with `meta` (any JSON value) as the job's current state. */
export function updateState(state = 'PROGRESS', meta = null) {
  if (typeof state !== 'string' || !state) throw new TypeError(`state must be a non-empty string, got ${state}`);
  call('progress', 'updateState', state, JSON.stringify(meta === undefined ? null : meta));
}
